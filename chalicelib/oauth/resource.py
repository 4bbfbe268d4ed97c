"""The Clipron API as an OAuth protected resource: the bearer check (RFC 6750) and its metadata (RFC 9728).

Access tokens are validated offline against the cached key ring: no DynamoDB or KMS call per
request. The price: a token of a revoked grant keeps working here until it expires (at most
ACCESS_TOKEN_SECONDS); introspection answers revocation at the cost of one DynamoDB read.
"""

from __future__ import annotations

from typing import Any

from chalicelib.oauth.bearer import bearer_token, challenged
from chalicelib.oauth.errors import InsufficientScope, OAuthError
from chalicelib.oauth.scopes import API_SCOPES
from chalicelib.oauth.tokens import AccessTokenClaims, AccessTokens
from chalicelib.settings import Settings

METADATA_PATH = "/.well-known/oauth-protected-resource/v1"


class UserTokenRequired(OAuthError):
    """A client_credentials token acts for no user, and every /v1 endpoint serves a user's data."""

    error = "insufficient_scope"
    status = 403
    scope: str | None = None

    def __init__(self) -> None:
        super().__init__("this endpoint needs a token issued for a user, not a client_credentials token")


def protected_resource_metadata(settings: Settings) -> dict[str, Any]:
    """RFC 9728 §2: where to get tokens for this API and how to present them."""
    return {
        "resource": settings.api_audience,
        "authorization_servers": [settings.issuer],
        "scopes_supported": sorted(API_SCOPES),
        "bearer_methods_supported": ["header"],
        "resource_name": "Clipron API",
    }


class ResourceGuard:
    """Checks a request's bearer token for one API: signature, issuer, audience, type, times, scope."""

    def __init__(self, access_tokens: AccessTokens, settings: Settings) -> None:
        self.access_tokens = access_tokens
        self.audience = settings.api_audience
        self.metadata_url = settings.url(METADATA_PATH)

    def check(self, authorization: str | None, scope: str | None) -> AccessTokenClaims:
        """The token's claims when it may call an endpoint needing `scope` (None: any user token).

        Raises an OAuthError whose headers already carry the RFC 6750 challenge (with RFC 9728 §5.1's
        resource_metadata).
        """
        try:
            claims = self.access_tokens.verify(bearer_token(authorization), self.audience)
            if claims.is_client_token:
                raise UserTokenRequired()
            if scope is not None and scope not in claims.scope:
                raise InsufficientScope(scope)
        except OAuthError as error:
            challenged(error, resource_metadata=self.metadata_url)
            raise
        return claims
