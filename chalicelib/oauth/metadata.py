"""Server metadata, built in one place: RFC 8414 and OpenID Connect Discovery 1.0 serve the same document,
so the two can never disagree. Every endpoint that exists, as an absolute URL under the issuer."""

from __future__ import annotations

from typing import Any

from chalicelib.oauth import scopes
from chalicelib.oauth.userinfo import USER_CLAIMS
from chalicelib.records import GRANT_TYPES
from chalicelib.settings import Settings

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
# introspection answers confidential clients only (oauth/introspection.py)
INTROSPECTION_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
ENDPOINTS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "jwks_uri": "/.well-known/jwks.json",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/introspect",
    "registration_endpoint": "/register",
    "userinfo_endpoint": "/userinfo",
    "end_session_endpoint": "/logout",
}
PROMPT_VALUES = ["none", "login", "consent", "select_account"]
# what an ID token or UserInfo response can carry (Discovery §3)
ID_TOKEN_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "sid", "amr"]


def authorization_server_metadata(settings: Settings) -> dict[str, Any]:
    metadata: dict[str, Any] = {"issuer": settings.issuer}
    metadata.update({name: settings.url(path) for name, path in ENDPOINTS.items()})
    metadata.update(
        {
            "scopes_supported": sorted(scopes.CATALOGUE),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": list(GRANT_TYPES),
            "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "introspection_endpoint_auth_methods_supported": INTROSPECTION_AUTH_METHODS,
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            # OpenID Connect Discovery 1.0 §3
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": [*ID_TOKEN_CLAIMS, *USER_CLAIMS],
            "claim_types_supported": ["normal"],
            "claims_parameter_supported": True,
            "prompt_values_supported": PROMPT_VALUES,
            "display_values_supported": ["page", "popup"],
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "require_request_uri_registration": False,
        }
    )
    if settings.client_id_metadata_documents:
        metadata["client_id_metadata_document_supported"] = True
    return metadata
