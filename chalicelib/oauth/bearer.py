"""RFC 6750 bearer credentials: the one `Authorization: Bearer` parser and the one challenge builder.

Used by the resource API (/v1) and by client registration (/register), so both refuse the same
headers the same way.
"""

from __future__ import annotations

import re

from chalicelib.oauth.errors import REALM, InvalidToken, OAuthError
from chalicelib.oauth.tokens import MAX_TOKEN_LENGTH

_B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")  # RFC 6750 §2.1


class MissingToken(InvalidToken):
    """No bearer credentials at all (no header, an empty one, another scheme): RFC 6750 §3.1 says the
    challenge then carries no error code."""

    def __init__(self) -> None:
        super().__init__("this request needs a bearer token in the Authorization header")


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1; the scheme is case-insensitive)."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingToken()
    token = value.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not _B64TOKEN.match(token):
        raise InvalidToken("the Authorization header must be `Bearer <token>`")
    return token


def challenged(error: OAuthError, **parameters: str) -> OAuthError:
    """`error` with its WWW-Authenticate challenge (RFC 6750 §3); `parameters` are appended as given."""
    parts = [f'realm="{REALM}"']
    if not isinstance(error, MissingToken):
        parts.append(f'error="{error.error}"')
        if error.description:  # already restricted to characters that need no quoting (errors.py)
            parts.append(f'error_description="{error.description}"')
        scope = getattr(error, "scope", None)
        if scope:
            parts.append(f'scope="{scope}"')
    parts.extend(f'{name}="{value}"' for name, value in parameters.items())
    error.headers["WWW-Authenticate"] = "Bearer " + ", ".join(parts)
    return error
