"""The scope catalogue, with the human descriptions the consent page shows, and scope parsing."""

from __future__ import annotations

import re

from chalicelib.oauth.errors import InvalidScope

API_SCOPES: dict[str, str] = {
    "read:analysis": "See your code analyses and their results",
    "write:analysis": "Start new code analyses",
    "read:project": "See your projects",
    "write:project": "Create and change your projects",
}
# OpenID Connect (Core §5.4): what the app learns about who you are
IDENTITY_SCOPES: dict[str, str] = {
    "openid": "Sign you in with your Clipron account",
    "profile": "See your name",
    "email": "See your email address and whether it is verified",
}
CATALOGUE: dict[str, str] = {**API_SCOPES, **IDENTITY_SCOPES}
OPENID = "openid"
# standard OpenID scopes Clipron has no claims for: ignored in an OpenID request (Core §5.4), never an error
IGNORED_OPENID_SCOPES = frozenset({"address", "phone", "offline_access"})
# scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by single spaces (RFC 6749 §3.3)
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$")
MAX_SCOPE_LENGTH = 1000


def parse_scope(value: str | None) -> list[str] | None:
    """A scope string as a sorted, de-duplicated list; None when absent or empty."""
    if value is None or value == "":
        return None
    if len(value) > MAX_SCOPE_LENGTH or not _SCOPE.match(value):
        raise InvalidScope("the scope is malformed")
    return sorted(set(value.split(" ")))


def format_scope(scopes: list[str]) -> str:
    return " ".join(sorted(set(scopes)))


def resolve(requested: str | None, allowed: list[str]) -> list[str]:
    """The requested scopes if all are allowed; the client's allowed scopes when none are requested."""
    scopes = parse_scope(requested)
    if scopes is not None and OPENID in scopes:
        scopes = [s for s in scopes if s not in IGNORED_OPENID_SCOPES]
    if scopes is None:
        if not allowed:
            raise InvalidScope("no scope was requested and the client has no default scope")
        return sorted(allowed)
    not_allowed = [s for s in scopes if s not in allowed]
    if not_allowed:
        raise InvalidScope("a requested scope is not allowed for this client")
    return scopes


def describe(scopes: list[str]) -> list[tuple[str, str]]:
    return [(s, CATALOGUE.get(s, s)) for s in scopes]
