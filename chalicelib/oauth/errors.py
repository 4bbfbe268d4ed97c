"""One exception type per OAuth error code (RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3, 7009, 7591)."""

from __future__ import annotations

import re
from typing import Any

# the protection space of every WWW-Authenticate challenge we send (Basic and Bearer)
REALM = "clipron"
# error_description may only hold %x20-21 / %x23-5B / %x5D-7E (RFC 6749 §5.2)
_UNSAFE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


class OAuthError(Exception):
    error = "invalid_request"
    status = 400

    def __init__(self, description: str = "", *, status: int | None = None, headers: dict[str, str] | None = None):
        super().__init__(description or self.error)
        self.description = _UNSAFE.sub("", description)[:300]
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class InvalidToken(OAuthError):
    """RFC 6750 §3.1: the access token is missing, malformed, expired or revoked."""

    error = "invalid_token"
    status = 401


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status = 403

    def __init__(self, scope: str):
        super().__init__("the access token lacks the scope this request needs (see the scope attribute)")
        self.scope = scope  # named in the challenge's scope attribute (RFC 6750 §3)


class InvalidRedirectUri(OAuthError):
    error = "invalid_redirect_uri"


class InvalidClientMetadata(OAuthError):
    error = "invalid_client_metadata"


class ClientAuthenticationThrottled(InvalidClient):
    """Client authentication refused by its throttle (/token, /revoke, /introspect): a failed client
    authentication, so `invalid_client` (RFC 6749 §5.2), answered 429 with Retry-After (RFC 6585 §4)
    instead of 401, the same whether the secret was right or wrong."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed client authentications; retry later",
                         headers={"Retry-After": str(max(1, retry_after))})


class RateLimited(OAuthError):
    """A rate limit or quota (open registration, API writes per user) is reached: the server cannot take
    this request now but will later, `temporarily_unavailable` (RFC 6749 §4.1.2.1's name for that),
    answered 429 with Retry-After (RFC 6585 §4)."""

    error = "temporarily_unavailable"
    status = 429

    def __init__(self, retry_after: int, description: str = "too many requests; retry later") -> None:
        super().__init__(description, headers={"Retry-After": str(max(1, retry_after))})


class ServerError(OAuthError):
    error = "server_error"
    status = 500


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status = 503

    def __init__(self, description: str = "the service is briefly unavailable, retry shortly"):
        super().__init__(description, headers={"Retry-After": "1"})
