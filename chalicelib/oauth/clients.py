"""Client authentication (RFC 6749 §2.3) and redirect-URI matching (RFC 9700 §4.1.3, RFC 8252 §7.3)."""

from __future__ import annotations

import base64
import binascii
import re
import threading
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence, TypeVar
from urllib.parse import unquote_plus

from chalicelib import audit
from chalicelib.crypto.secrets import digest, digests_equal
from chalicelib.oauth.cimd import MAX_METADATA_URL, is_metadata_url
from chalicelib.oauth.errors import REALM, ClientAuthenticationThrottled, InvalidClient, InvalidRequest
from chalicelib.oauth.throttle import Limit, Throttle, Throttled, ThrottleStore, source_of, subject_of
from chalicelib.records import ClientRecord, CounterSlot, LimitReached, live
from chalicelib.settings import Settings

BASIC_CHALLENGE = f'Basic realm="{REALM}"'
MAX_CLIENT_ID = 128
MAX_SECRET = 256
FAILURE_WINDOW_SECONDS = 60
_UNKNOWN_CLIENT_DIGEST = digest("no-such-client")
# http, a loopback IP literal, an optional ASCII port, then a path or query (RFC 8252 §7.3)
_LOOPBACK_URI = re.compile(r"http://(?P<host>127\.0\.0\.1|\[::1\])(?::(?P<port>[0-9]{1,5}))?(?P<rest>[/?].*)?",
                           re.DOTALL)


R = TypeVar("R")


class ClientStore(ThrottleStore, Protocol):
    def get_client(self, client_id: str) -> ClientRecord | None: ...
    def touch_client(self, client_id: str, expires_at: int) -> None: ...
    def check_limits(self, limits: Sequence[CounterSlot]) -> None: ...


@dataclass(frozen=True)
class ClientAuthLimits:
    """Failed client authentications per minute (README "Throttling"). Keyed by client *and* source, so
    guessing from elsewhere never locks a real client out of its own token endpoint, plus a looser
    limit per source across every client id (spraying). There is no per-client limit over all
    sources: that would be a switch to lock a client out, and a 256-bit secret needs no such guard."""

    client_source: Limit
    source: Limit

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientAuthLimits:
        return cls(Limit("client-auth", settings.client_auth_max_failures, FAILURE_WINDOW_SECONDS),
                   Limit("client-auth-source", settings.client_auth_source_max_failures, FAILURE_WINDOW_SECONDS))


class ClientResolver(Protocol):
    """Clients identified by an https URL (Client ID Metadata Documents, oauth/cimd.py)."""

    def resolve(self, url: str) -> ClientRecord | None: ...


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    secret: str | None
    method: str  # client_secret_basic | client_secret_post | none
    used_basic: bool
    source: str | None = None  # the address the gateway saw, for the throttle


class ClientDirectory:
    """Clients by id, cached per process for a bounded time (a warm path reads no client item).

    A change made through this process (rotation, deletion) forgets its entry at once; other
    Lambda instances see it within `ttl_seconds` (F-21).
    """

    def __init__(
        self, store: ClientStore, settings: Settings, clock: Callable[[], int], documents: ClientResolver | None = None
    ) -> None:
        self.store = store
        self.ttl_seconds = settings.client_cache_seconds
        self.limits = ClientAuthLimits.from_settings(settings)
        self.idle_seconds = settings.open_registration_idle_seconds  # how long an openly registered client lives unused
        self.clock = clock
        self.documents = documents  # None: URL client ids are not resolved (metadata documents off)
        self._cache: dict[str, tuple[int, ClientRecord | None]] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str) -> ClientRecord | None:
        by_document = self.documents is not None and is_metadata_url(client_id)
        if not valid_client_id(client_id, MAX_METADATA_URL if by_document else MAX_CLIENT_ID):
            return None
        now = self.clock()
        with self._lock:
            cached = self._cache.get(client_id)
        if cached is not None and now - cached[0] < self.ttl_seconds and live(_expiry(cached[1]), now):
            return cached[1]
        if by_document:
            assert self.documents is not None
            client = self.documents.resolve(client_id)
        else:
            client = self.store.get_client(client_id)
            self._keep_alive(client, now)
        if client is not None and client.disabled:
            client = None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[client_id] = (now, client)
        return client

    def forget(self, client_id: str) -> None:
        with self._lock:
            self._cache.pop(client_id, None)

    def authenticate(self, authorization: str | None, form: dict[str, str], source: str | None = None) -> ClientRecord:
        """The client a back-channel request (revocation, introspection) authenticated as (RFC 6749 §2.3),
        refused while a limit is full (one BatchGetItem); `source` is the caller's address, for the throttle."""
        client, gate = self.admit(authorization, form, source)
        gate.check()
        return client

    def admit(
        self, authorization: str | None, form: dict[str, str], source: str | None = None
    ) -> tuple[ClientRecord, LimitGate]:
        """The client a request authenticated as, and the gate it must pass before answering anything
        (the token endpoint folds that check into its first read)."""
        return authenticate(self, client_credentials(authorization, form, source), self.clock(), self.limits)

    def _keep_alive(self, client: ClientRecord | None, now: int) -> None:
        """An expiring (openly registered) client in use lives on: its expiry moves forward, with one
        write only once half of its idle lifetime has passed, so use costs almost nothing."""
        if client is None or client.expires_at is None or self.idle_seconds <= 0:
            return
        if client.expires_at - now < self.idle_seconds // 2:
            client.expires_at = now + self.idle_seconds
            self.store.touch_client(client.client_id, client.expires_at)


def _expiry(client: ClientRecord | None) -> int | None:
    return client.expires_at if client is not None else None


def valid_client_id(client_id: str, longest: int = MAX_CLIENT_ID) -> bool:
    """Whether `client_id` could name a client; empty or longer ids are never looked up."""
    return 0 < len(client_id) <= longest


def _invalid_client(used_basic: bool, description: str = "client authentication failed") -> InvalidClient:
    return InvalidClient(description, headers={"WWW-Authenticate": BASIC_CHALLENGE} if used_basic else None)


def _decode_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid_client(True, "the Basic credentials are not valid base64") from None
    if ":" not in decoded:
        raise _invalid_client(True, "the Basic credentials have no colon")
    client_id, secret = decoded.split(":", 1)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64
    return unquote_plus(client_id), unquote_plus(secret)


def client_credentials(
    authorization: str | None, form: dict[str, str], source: str | None = None
) -> ClientCredentials:
    """Which client claims to be calling, and how. Exactly one mechanism (RFC 6749 §2.3)."""
    body_id = form.get("client_id") or None
    body_secret = form.get("client_secret") or None  # an empty value counts as absent
    if authorization is not None:
        if len(authorization) > 1024:
            raise _invalid_client(True, "the Authorization header is too long")
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic" or not value.strip():
            raise _invalid_client(True, "use HTTP Basic client authentication")
        client_id, secret = _decode_basic(value)
        if body_secret is not None:
            raise InvalidRequest("use exactly one client authentication method")
        if body_id is not None and body_id != client_id:
            raise InvalidRequest("client_id in the body differs from the authenticated client")
        return ClientCredentials(client_id, secret, "client_secret_basic", True, source)
    if body_id is None:
        raise _invalid_client(False, "client authentication is required")
    if body_secret is not None:
        return ClientCredentials(body_id, body_secret, "client_secret_post", False, source)
    return ClientCredentials(body_id, None, "none", False, source)


class LimitGate:
    """The client-authentication limits a request that authenticated must still be under before it
    answers anything, right secret or not: while a limit is full every attempt gets the same 429.

    A failed attempt needs no gate: its conditional `Throttle.take` refuses once a limit is full. A
    success is checked by reading the two counters: folded into the request's first read (`checked`,
    e.g. the code or refresh token at /token, so it costs no call of its own), else one BatchGetItem
    (`check`). Until the gate has passed, no answer but a 429 may leave (TokenEndpoint.handle).
    """

    def __init__(self, store: ClientStore, throttle: Throttle, wanted: Sequence[tuple[Limit, str]], client_id: str):
        self.store = store
        self.throttle = throttle
        self.limits = {limit.slot(subject): limit for limit, subject in wanted}
        self.client_id = client_id
        self.passed = False

    def checked(self, read: Callable[[Sequence[CounterSlot]], R]) -> R:
        """`read(slots)`: a store read that also checks these counters (LimitReached when one is full);
        ClientAuthenticationThrottled (429 invalid_client) when one is."""
        try:
            result = read(() if self.passed else tuple(self.limits))
        except LimitReached as reached:
            raise self._refused(self.limits[reached.slot]) from None
        self.passed = True
        return result

    def check(self) -> None:
        """ClientAuthenticationThrottled while a limit is full; one BatchGetItem, none once passed."""
        if not self.passed:
            self.checked(self.store.check_limits)

    def _refused(self, limit: Limit) -> ClientAuthenticationThrottled:
        return _throttled(self.throttle.refusal(limit), self.client_id)


def authenticate(
    directory: ClientDirectory, credentials: ClientCredentials, now: int, limits: ClientAuthLimits
) -> tuple[ClientRecord, LimitGate]:
    """The client, when it authenticated with its registered method, and the gate its success must still
    pass; InvalidClient otherwise.

    Unknown clients and wrong secrets fail alike (same error, same hashing work, same throttle). A
    failure counts itself and is refused (429) once a limit is full; a success is refused alike by
    the gate, so while a limit is reached every attempt gets the same 429, right secret or wrong.
    """
    throttle = Throttle(directory.store, directory.clock)
    source = source_of(credentials.source)
    wanted = ((limits.client_source, subject_of(credentials.client_id[:MAX_CLIENT_ID], source)),
              (limits.source, subject_of(source)))
    client = directory.get(credentials.client_id)
    presented = digest(credentials.secret[:MAX_SECRET]) if credentials.secret is not None else None
    ok = client is not None and credentials.method == client.auth_method
    if ok and client is not None and client.confidential:
        matches = [digests_equal(presented or _UNKNOWN_CLIENT_DIGEST, s.digest) for s in client.live_secrets(now)]
        ok = presented is not None and any(matches)
    elif client is None and presented is not None:
        digests_equal(presented, _UNKNOWN_CLIENT_DIGEST)
    if ok and client is not None:
        return client, LimitGate(directory.store, throttle, wanted, credentials.client_id[:MAX_CLIENT_ID])
    try:
        throttle.take(*wanted)  # count the failure
    except Throttled as refused:  # this one found a limit full
        raise _throttled(refused, credentials.client_id[:MAX_CLIENT_ID]) from None
    raise _invalid_client(credentials.used_basic)


def _throttled(refused: Throttled, client_id: str) -> ClientAuthenticationThrottled:
    """429 invalid_client with Retry-After: the same answer for a right and a wrong secret."""
    audit.emit("client_auth.throttled", client_id=client_id)
    return ClientAuthenticationThrottled(refused.retry_after)


def match_redirect_uri(client: ClientRecord, requested: str | None) -> str | None:
    """The redirect URI to use, or None when it does not match a registered one.

    Exact string comparison; the only exception is the port of a loopback IP literal registered by
    a native (public) app, which cannot know its port in advance (RFC 8252 §7.3). A confidential web
    client runs at a fixed address: exact match. Omitted: allowed when exactly one URI is registered.
    """
    if requested is None:
        return client.redirect_uris[0] if len(client.redirect_uris) == 1 else None
    if requested in client.redirect_uris:
        return requested
    if client.confidential:
        return None
    loopback = _without_loopback_port(requested)
    if loopback is not None and any(_without_loopback_port(r) == loopback for r in client.redirect_uris):
        return requested
    return None


def _without_loopback_port(uri: str) -> tuple[str, str] | None:
    """(host, everything after the authority) of a loopback IP literal URI, compared as raw text.

    No URL parser here: urlsplit lowercases the scheme, drops tabs and newlines and forgets an empty
    '?' or '#', so two different strings (one with a CR LF for the Location header) would compare equal.
    """
    match = _LOOPBACK_URI.fullmatch(uri)
    if match is None or (match["port"] is not None and not 1 <= int(match["port"]) <= 65535):
        return None
    return match["host"], match["rest"] or ""
