"""Resource servers and resource indicators (RFC 8707): which audience a token names, and what it may carry.

A resource server is a record (identifier, name, accepted scopes with their consent descriptions,
access-token lifetime). The Clipron API (`API_AUDIENCE`, the scope catalogue) is built in and never
read from the table; operators add others with the CLI. Records are cached per process like clients,
so a warm token request pays no read for its resource.

Rules: a `resource` is an absolute URI without fragment (§2) that names a known resource server,
otherwise `invalid_target`; no `resource` means the Clipron API. A token names exactly one audience.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol
from urllib.parse import urlsplit

from chalicelib.oauth.errors import InvalidScope, OAuthError
from chalicelib.oauth.scopes import CATALOGUE, parse_scope
from chalicelib.records import ResourceServerRecord
from chalicelib.settings import Settings

MAX_RESOURCE = 512
MAX_RESOURCES = 5  # per authorization request
MAX_NAME = 100
MAX_DESCRIPTION = 200


class InvalidTarget(OAuthError):
    """RFC 8707 §2 / RFC 8693 §2.2.2: the resource is unknown, malformed or not allowed here."""

    error = "invalid_target"


class ResourceStore(Protocol):
    def get_resource_server(self, identifier: str) -> ResourceServerRecord | None: ...


def well_formed(identifier: str) -> bool:
    """An absolute URI (scheme and authority) without fragment or userinfo, of bounded length."""
    if not identifier or len(identifier) > MAX_RESOURCE or "#" in identifier:
        return False
    if any(ch.isspace() or ord(ch) < 0x21 or ord(ch) > 0x7E for ch in identifier):
        return False
    try:
        parts = urlsplit(identifier)
    except ValueError:
        return False
    return bool(parts.scheme and parts.netloc) and "@" not in parts.netloc


def builtin_api(settings: Settings) -> ResourceServerRecord:
    """The Clipron API: the default audience, accepting the scope catalogue."""
    return ResourceServerRecord(
        identifier=settings.api_audience,
        name="Clipron API",
        scopes=dict(CATALOGUE),
        access_token_seconds=settings.access_token_seconds,
    )


def new_resource_server(
    identifier: str, name: str, scopes: dict[str, str], access_token_seconds: int, client_id: str | None, now: int
) -> ResourceServerRecord:
    """A validated record for the operator's create-resource-server; ValueError says what is wrong."""
    if not well_formed(identifier) or urlsplit(identifier).query:
        raise ValueError("the identifier must be an absolute URI without query or fragment (RFC 8707 §2)")
    if not name.strip() or len(name) > MAX_NAME:
        raise ValueError(f"the name must be 1 to {MAX_NAME} characters")
    if not scopes:
        raise ValueError("a resource server accepts at least one scope")
    for scope, description in scopes.items():
        try:
            valid = parse_scope(scope) == [scope]
        except InvalidScope:
            valid = False
        if not valid:
            raise ValueError(f"not a scope token: {scope!r}")
        if not description or len(description) > MAX_DESCRIPTION:
            raise ValueError(f"the scope {scope} needs a description of at most {MAX_DESCRIPTION} characters")
    if not 60 <= access_token_seconds <= 3600:
        raise ValueError("the access-token lifetime must be between 60 and 3600 seconds")
    return ResourceServerRecord(identifier, name.strip(), dict(scopes), access_token_seconds, now, client_id)


class ResourceDirectory:
    """Resource servers by identifier: the built-in Clipron API, then the table, cached for `ttl_seconds`."""

    def __init__(self, store: ResourceStore, settings: Settings, clock: Callable[[], int]) -> None:
        self.store = store
        self.builtin = builtin_api(settings)
        self.ttl_seconds = settings.client_cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[int, ResourceServerRecord | None]] = {}
        self._lock = threading.Lock()

    @property
    def default(self) -> ResourceServerRecord:
        return self.builtin

    def get(self, identifier: str) -> ResourceServerRecord | None:
        if identifier == self.builtin.identifier:
            return self.builtin
        if not well_formed(identifier):
            return None
        now = self.clock()
        with self._lock:
            cached = self._cache.get(identifier)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            return cached[1]
        record = self.store.get_resource_server(identifier)
        with self._lock:
            self._cache[identifier] = (now, record)
        return record

    def require(self, identifier: str) -> ResourceServerRecord:
        """The named resource server, or invalid_target (fixed description: the value is never echoed)."""
        server = self.get(identifier)
        if server is None:
            raise InvalidTarget("the resource is unknown or malformed")
        return server

    def pick(self, requested: str | None, granted: list[str]) -> ResourceServerRecord:
        """The audience of a token from a grant: the requested resource when the grant covers it, else the
        grant's first resource (the Clipron API for grants made without `resource`). Never a new one."""
        covered = granted or [self.builtin.identifier]
        if requested is None:
            return self.require(covered[0])
        if requested not in covered:
            raise InvalidTarget("the resource is not part of this grant")
        return self.require(requested)


def scopes_for(server: ResourceServerRecord, granted: list[str]) -> list[str]:
    """The granted scopes this resource accepts; invalid_scope when there are none."""
    accepted = sorted(set(granted) & server.scopes.keys())
    if not accepted:
        raise InvalidScope("the grant holds no scope this resource accepts")
    return accepted


class ResourceServerList(Protocol):
    def list_resource_servers(self) -> list[ResourceServerRecord]: ...


def registrable_scopes(store: ResourceServerList) -> set[str]:
    """Every scope some registered resource server accepts (one Query; registration paths only)."""
    return {scope for server in store.list_resource_servers() for scope in server.scopes}
