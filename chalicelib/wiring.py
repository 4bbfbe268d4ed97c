"""The composition root: builds the store, the key ring and the protocol services once per process.

Everything is created lazily on first use (the Chalice samples' module-global getters), so importing
the app costs no AWS client and tests can start moto before anything talks to AWS.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from chalicelib import clock, deadline
from chalicelib.crypto.envelope import Envelope
from chalicelib.crypto.keyring import KeyRing
from chalicelib.oauth.cimd import MetadataDocuments
from chalicelib.oauth.clients import ClientDirectory
from chalicelib.oauth.id_tokens import IdTokens
from chalicelib.oauth.resource_servers import ResourceDirectory, builtin_api, registrable_scopes
from chalicelib.oauth.sessions import Sessions
from chalicelib.oauth.throttle import Throttle
from chalicelib.oauth.tokens import AccessTokens
from chalicelib.outbound import OutboundPolicy, fetch_json_document
from chalicelib.settings import Settings, get_settings
from chalicelib.store.dynamo import DynamoStore, bind_models, shared_connection

# a retired key stays published this long beyond the longest token lifetime (JWKS caches)
JWKS_CACHE_MARGIN_SECONDS = 600


@dataclass
class Services:
    settings: Settings
    store: DynamoStore
    keyring: KeyRing
    access_tokens: AccessTokens
    clients: ClientDirectory
    sessions: Sessions
    resources: ResourceDirectory
    throttle: Throttle
    id_tokens: IdTokens
    _kms: Any = None

    def kms(self) -> Any:
        """A KMS client on the DynamoDB connection's botocore session (one session per process)."""
        if self._kms is None:
            config = Config(
                connect_timeout=self.settings.ddb_connect_timeout_seconds,
                read_timeout=self.settings.ddb_read_timeout_seconds,
                retries={"total_max_attempts": 1 + self.settings.ddb_max_retries, "mode": "standard"},
            )
            session = shared_connection().session
            self._kms = session.create_client("kms", region_name=self.settings.aws_region, config=config)
            deadline.watch(self._kms)
        return self._kms

    def envelope(self) -> Envelope:
        return Envelope(self.kms(), self.settings.kms_key_id)


_services: Services | None = None
_lock = threading.Lock()


def build(settings: Settings) -> Services:
    bind_models(settings)
    deadline.watch(shared_connection().client)
    store = DynamoStore(clock.now)
    holder: dict[str, Services] = {}
    keyring = KeyRing(
        store,
        lambda: holder["services"].envelope(),
        clock.now,
        cache_seconds=settings.key_cache_seconds,
        publish_retired_seconds=max(settings.access_token_seconds, settings.id_token_seconds)
        + JWKS_CACHE_MARGIN_SECONDS,
    )
    access_tokens = AccessTokens(keyring, settings.issuer, settings.access_token_seconds, clock.now)
    clients = ClientDirectory(store, settings.client_cache_seconds, clock.now, metadata_documents(settings, store),
                              settings.open_registration_idle_seconds)
    sessions = Sessions(store, settings.session_seconds, clock.now)
    resources = ResourceDirectory(store, builtin_api(settings), settings.client_cache_seconds, clock.now)
    throttle = Throttle(store, clock.now)
    id_tokens = IdTokens(keyring, settings.issuer, settings.id_token_seconds, clock.now)
    services = holder["services"] = Services(settings, store, keyring, access_tokens, clients, sessions, resources,
                                             throttle, id_tokens)
    return services


def metadata_documents(settings: Settings, store: DynamoStore) -> MetadataDocuments | None:
    """Client ID Metadata Documents, fetched under the outbound policy (loopback only in the local stage)."""
    if not settings.client_id_metadata_documents:
        return None
    policy = OutboundPolicy(allow_loopback=settings.outbound_loopback_allowed, ca_files=settings.outbound_ca_files)
    return MetadataDocuments(store, functools.partial(fetch_json_document, policy=policy), clock.now,
                             settings.metadata_document_min_cache_seconds, settings.metadata_document_max_cache_seconds,
                             lambda: registrable_scopes(store))


def services() -> Services:
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                _services = build(get_settings())
    return _services


def reset() -> None:
    """Forget every cached object (tests, and the local run after provisioning)."""
    global _services
    with _lock:
        _services = None
    get_settings.cache_clear()
