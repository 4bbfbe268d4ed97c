"""RFC 7591 dynamic client registration and RFC 7592 client management.

POST /register is authorised by an initial access token an operator issued (stored as a digest,
with an expiry). Under the `open` registration policy (MCP agents register themselves) a request
without one may register a *public* client only: throttled per source address and overall, with
least-privilege scopes, unverified, and expiring when left unused. The response carries a
registration access token (stored as a digest on the client) that authorises GET/PUT/DELETE on the
registration_client_uri.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection, Protocol

from chalicelib import audit
from chalicelib.crypto.secrets import digest, digests_equal, new_token, secret_matches
from chalicelib.oauth import registration
from chalicelib.oauth.bearer import bearer_token, challenged
from chalicelib.oauth.clients import valid_client_id
from chalicelib.oauth.developer import ClientCache, DeveloperStore, delete_application
from chalicelib.oauth.errors import (
    InvalidClientMetadata,
    InvalidRequest,
    InvalidToken,
    OAuthError,
    RateLimited,
    TemporarilyUnavailable,
)
from chalicelib.oauth.throttle import Limit, Throttle, ThrottleStore, subject_of
from chalicelib.records import ClientRecord, ConditionFailed, RegistrationTokenRecord
from chalicelib.settings import Settings

_NO_CLIENT_DIGEST = digest("no-such-client")
# RFC 7592 §2.2: the client must not send these in an update (the server owns them)
_SERVER_OWNED = ("registration_access_token", "registration_client_uri", "client_secret_expires_at",
                 "client_id_issued_at")


OPEN_WINDOW_SECONDS = 3600


class RegistrationStore(DeveloperStore, ThrottleStore, Protocol):
    def get_registration_token(self, token_digest: str) -> RegistrationTokenRecord | None: ...
    def count_attempt(self, key: str, window_seconds: int) -> int: ...


@dataclass(frozen=True)
class RegistrationPolicy:
    open: bool = False  # settings.registration_policy == "open"
    idle_seconds: int = 30 * 86400
    per_source_per_hour: int = 10
    per_hour: int = 1000
    per_token_per_day: int = 100  # registrations one initial access token may make a day


def registration_policy(settings: Settings) -> RegistrationPolicy:
    return RegistrationPolicy(
        open=settings.registration_policy == "open",
        idle_seconds=settings.open_registration_idle_seconds,
        per_source_per_hour=settings.open_registration_per_source_per_hour,
        per_hour=settings.open_registration_per_hour,
        per_token_per_day=settings.registrations_per_token_per_day,
    )


def _unauthorised(description: str) -> OAuthError:
    return challenged(InvalidToken(description))


def _presented_token(authorization: str | None) -> str:
    """The bearer token of the request; InvalidToken (401 + RFC 6750 challenge) otherwise."""
    try:
        return bearer_token(authorization)
    except InvalidToken as error:
        raise challenged(error) from None


def _public_only(metadata: dict[str, Any]) -> dict[str, Any]:
    """Open registration registers public clients only; an absent method means none (RFC 7591 §3.2.1
    lets the server choose, and says so in the response)."""
    method = metadata.get("token_endpoint_auth_method", "none")
    if method != "none":
        raise InvalidClientMetadata(
            "without an initial access token only public clients register (token_endpoint_auth_method none)")
    return {**metadata, "token_endpoint_auth_method": "none"}


class Registrar:
    def __init__(
        self,
        store: RegistrationStore,
        clients: ClientCache,
        settings: Settings,
        clock: Callable[[], int],
        resource_scopes: Callable[[], Collection[str]] = tuple,
    ) -> None:
        self.store = store
        self.clients = clients
        self.url = settings.url  # absolute URL under the issuer
        self.clock = clock
        self.policy = registration_policy(settings)
        self.resource_scopes = resource_scopes  # scopes the operator's resource servers accept, beyond the catalogue

    def client_uri(self, client_id: str) -> str:
        return self.url(f"/register/{client_id}")

    # -- RFC 7591 --
    def authorise_registration(self, authorization: str | None, source_address: str = "") -> bool:
        """True when an initial access token authorises the registration; False for an anonymous one
        under the open policy (counted against its limits first: reserve before doing any work).

        A token that is sent must be valid, open policy or not."""
        if authorization is None and self.policy.open:
            self._reserve_open_registration(source_address or "unknown")
            return False
        token = _presented_token(authorization)
        if self.store.get_registration_token(digest(token)) is None:
            raise _unauthorised("the initial access token is invalid or expired")
        quota = Limit("register-token", self.policy.per_token_per_day, 86400)
        Throttle(self.store, self.clock).take((quota, subject_of(digest(token))))  # a leaked token's reach
        return True

    def _reserve_open_registration(self, source_address: str) -> None:
        """Per source address, then overall (a source over its own limit does not eat the global one)."""
        limits = ((f"register:source:{source_address}", self.policy.per_source_per_hour),
                  ("register:all", self.policy.per_hour))
        for key, limit in limits:
            if self.store.count_attempt(key, OPEN_WINDOW_SECONDS) > limit:
                retry = OPEN_WINDOW_SECONDS - self.clock() % OPEN_WINDOW_SECONDS
                raise RateLimited(retry, "too many registrations; retry later")

    def register(self, metadata: Any, with_token: bool = True) -> dict[str, Any]:
        """A new client from the metadata; the client secret and registration access token appear only here."""
        if not isinstance(metadata, dict):
            raise InvalidClientMetadata("the request body must be a JSON object of client metadata")
        now = self.clock()
        extra = self.resource_scopes()
        if with_token:
            registered = registration.build_client(metadata, None, now, extra_scopes=extra)
        else:
            registered = registration.build_client(_public_only(metadata), None, now, extra_scopes=extra)
            registered.client.expires_at = now + self.policy.idle_seconds
        access_token = new_token()
        registered.client.registration_token_digest = digest(access_token)
        self.store.create_client(registered.client)
        if with_token:
            audit.emit("registration.by_token", client_id=registered.client.client_id)
        audit.emit("client.created", client_id=registered.client.client_id, via="register" if with_token else "open")
        response = self._information(registered.client)
        if registered.client_secret is not None:
            response["client_secret"] = registered.client_secret
            response["client_secret_expires_at"] = 0  # never
        response["registration_access_token"] = access_token
        return response

    # -- RFC 7592 --
    def managed_client(self, authorization: str | None, client_id: str) -> ClientRecord:
        """The client the registration access token belongs to; an unknown client and a wrong token look alike."""
        token = _presented_token(authorization)
        client = self.store.get_client(client_id) if valid_client_id(client_id) else None
        if client is not None and client.disabled:  # an operator disabled it: refused everywhere, alike
            client = None
        stored = client.registration_token_digest if client is not None else None
        if not digests_equal(digest(token), stored or _NO_CLIENT_DIGEST) or client is None or stored is None:
            raise _unauthorised("the registration access token is invalid")
        return client

    def read(self, client: ClientRecord) -> dict[str, Any]:
        return self._information(client)

    def update(self, client: ClientRecord, metadata: Any) -> dict[str, Any]:
        """RFC 7592 §2.2: the request replaces the metadata; omitted fields take their defaults."""
        if not isinstance(metadata, dict):
            raise InvalidClientMetadata("the request body must be a JSON object of client metadata")
        if metadata.get("client_id") != client.client_id:
            raise InvalidRequest("client_id must be present and equal the client being updated")
        sent = [name for name in _SERVER_OWNED if name in metadata]
        if sent:
            raise InvalidRequest("registration_access_token, registration_client_uri, client_secret_expires_at "
                                 "and client_id_issued_at must not be sent in an update")
        token_digest = client.registration_token_digest

        def replace(current: ClientRecord) -> None:
            if current.registration_token_digest != token_digest:
                raise _unauthorised("the registration access token is invalid")
            if "client_secret" in metadata:
                presented = metadata["client_secret"]
                live = current.live_secrets(self.clock())
                matches = [secret_matches(presented, s.digest) for s in live] if isinstance(presented, str) else []
                if not any(matches):
                    raise InvalidRequest("client_secret does not match the current secret (it cannot be chosen)")
            registration.apply_metadata(current, metadata, self.resource_scopes())

        try:
            updated = self.store.update_client(client.client_id, replace)
        except ConditionFailed:
            raise TemporarilyUnavailable("the registration changed while saving; try again") from None
        if updated is None:
            raise _unauthorised("the registration access token is invalid")
        self.clients.forget(client.client_id)
        audit.emit("client.updated", client_id=client.client_id, via="register")
        return self._information(updated)

    def delete(self, client: ClientRecord) -> None:
        delete_application(self.store, self.clients, client, via="register")

    def _information(self, client: ClientRecord) -> dict[str, Any]:
        return {**registration.client_metadata(client), "registration_client_uri": self.client_uri(client.client_id)}
