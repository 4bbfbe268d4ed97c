"""RFC 8414 authorization server metadata: every endpoint that exists, built from the issuer."""

from __future__ import annotations

from typing import Any

from chalicelib.oauth import scopes
from chalicelib.oauth.grants import GRANT_TYPES
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
}


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
        }
    )
    if settings.client_id_metadata_documents:
        metadata["client_id_metadata_document_supported"] = True
    return metadata
