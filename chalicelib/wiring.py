"""The composition root: builds the store, the key ring and every protocol service once per process.

Routes ask `services()` for what they need and construct nothing. Everything is created lazily on
first use (the Chalice samples' module-global getters), so importing the app costs no AWS client and
tests can start moto before anything talks to AWS. Every service takes its collaborators in one order,
leaving out what it does not use: store, client directory, access tokens, resources, settings, clock; each
reads its own numbers (lifetimes, limits, cache bounds) from Settings.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, field
from typing import Any

from botocore.config import Config

from chalicelib import clock, deadline
from chalicelib.api.service import ClipronApi
from chalicelib.crypto.envelope import Envelope
from chalicelib.crypto.keyring import KeyRing
from chalicelib.oauth.authorize import AuthorizationFlow
from chalicelib.oauth.cimd import MetadataDocuments
from chalicelib.oauth.clients import ClientDirectory
from chalicelib.oauth.developer import Developer
from chalicelib.oauth.dynamic_registration import Registrar
from chalicelib.oauth.grants import TokenEndpoint
from chalicelib.oauth.id_tokens import IdTokens
from chalicelib.oauth.introspection import Introspector
from chalicelib.oauth.logout import Logout
from chalicelib.oauth.resource import ResourceGuard
from chalicelib.oauth.resource_servers import ResourceDirectory, registrable_scopes
from chalicelib.oauth.revocation import Revoker
from chalicelib.oauth.sessions import Sessions
from chalicelib.oauth.throttle import Throttle
from chalicelib.oauth.tokens import AccessTokens
from chalicelib.oauth.userinfo import UserInfo
from chalicelib.outbound import OutboundPolicy, fetch_json_document
from chalicelib.settings import Settings, get_settings
from chalicelib.store.api_store import ApiStore
from chalicelib.store.dynamo import DynamoStore, bind_models, shared_connection


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
    token_endpoint: TokenEndpoint
    authorization_flow: AuthorizationFlow
    revoker: Revoker
    introspector: Introspector
    registrar: Registrar
    developer: Developer
    resource_guard: ResourceGuard
    api_store: ApiStore
    api: ClipronApi
    userinfo: UserInfo
    logout: Logout
    _kms: Any = None
    _kms_lock: threading.Lock = field(default_factory=threading.Lock)

    def kms(self) -> Any:
        """A KMS client on the DynamoDB connection's botocore session, one per process: requests that
        arrive together (the threaded local run) must not each build one (each costs a model load)."""
        with self._kms_lock:
            if self._kms is None:
                self._kms = self._new_kms_client()
        return self._kms

    def _new_kms_client(self) -> Any:
        config = Config(
            connect_timeout=self.settings.ddb_connect_timeout_seconds,
            read_timeout=self.settings.ddb_read_timeout_seconds,
            retries={"total_max_attempts": 1 + self.settings.ddb_max_retries, "mode": "standard"},
        )
        session = shared_connection().session
        client = session.create_client("kms", region_name=self.settings.aws_region, config=config)
        deadline.watch(client)
        return client

    def envelope(self) -> Envelope:
        return Envelope(self.kms(), self.settings.kms_key_id)


_services: Services | None = None
_lock = threading.Lock()


def build(settings: Settings) -> Services:
    bind_models(settings)
    deadline.watch(shared_connection().client)
    store = DynamoStore(clock.now)
    holder: dict[str, Services] = {}
    keyring = KeyRing(store, lambda: holder["services"].envelope(), settings, clock.now)
    access_tokens = AccessTokens(keyring, settings, clock.now)
    clients = ClientDirectory(store, settings, clock.now, metadata_documents(settings, store))
    resources = ResourceDirectory(store, settings, clock.now)
    id_tokens = IdTokens(keyring, settings, clock.now)
    throttle = Throttle(store, clock.now)
    api_store = ApiStore()
    services = holder["services"] = Services(
        settings=settings,
        store=store,
        keyring=keyring,
        access_tokens=access_tokens,
        clients=clients,
        sessions=Sessions(store, settings, clock.now),
        resources=resources,
        throttle=throttle,
        id_tokens=id_tokens,
        token_endpoint=TokenEndpoint(store, clients, access_tokens, resources, id_tokens, settings, clock.now),
        authorization_flow=AuthorizationFlow(store, clients, resources, settings, clock.now, id_tokens, throttle),
        revoker=Revoker(store, clients, access_tokens, clock.now),
        introspector=Introspector(store, clients, access_tokens, resources, clock.now),
        registrar=Registrar(store, clients, settings, clock.now, lambda: registrable_scopes(store)),
        developer=Developer(store, clients, settings, clock.now),
        resource_guard=ResourceGuard(access_tokens, settings),
        api_store=api_store,
        api=ClipronApi(api_store, throttle, settings, clock.now),
        userinfo=UserInfo(store, access_tokens, settings),
        logout=Logout(clients, id_tokens),
    )
    return services


def metadata_documents(settings: Settings, store: DynamoStore) -> MetadataDocuments | None:
    """Client ID Metadata Documents, fetched under the outbound policy (loopback only in the local stage)."""
    if not settings.client_id_metadata_documents:
        return None
    policy = OutboundPolicy(allow_loopback=settings.outbound_loopback_allowed, ca_files=settings.outbound_ca_files)
    return MetadataDocuments(store, functools.partial(fetch_json_document, policy=policy), settings, clock.now,
                             lambda: registrable_scopes(store))


def services() -> Services:
    global _services
    if _services is None:
        with _lock:
            if _services is None:
                _services = build(get_settings())
    return _services


def serve(built: Services) -> None:
    """Make `built` this process's services (the CLI serves the stage it was given; tests another setting)."""
    global _services
    with _lock:
        _services = built


def reset() -> None:
    """Forget every cached object (tests, and the local run after provisioning)."""
    global _services
    with _lock:
        _services = None
    get_settings.cache_clear()
