"""CORS for the back channel: one rule by path, applied to every route once the blueprints are registered.

Browser-based clients (MCP Inspector, single-page apps) call the token, revocation, introspection,
registration and UserInfo endpoints, the discovery documents, the JWKS and the Clipron API directly.
Those endpoints read no cookie (credentials travel in headers or the body), so any origin may call
them: `Access-Control-Allow-Origin: *`, never `Allow-Credentials`. The pages (/authorize, /login,
/consent, /logout, the dashboard) get no CORS at all: a cross-origin script must not read them.

Chalice's route option `cors=` does the work in both places: `chalice local` (and chalice.test)
answers the preflight from it, and `chalice package`/`deploy` turns it into an OPTIONS method (MOCK
integration) on API Gateway. It allows one origin per path, which is all this rule needs. Setting it
here, by path, rather than on each route means a route added later (OIDC's /userinfo) cannot forget it.
"""

from __future__ import annotations

from chalice import Chalice, CORSConfig

BACK_CHANNEL_PATHS = ("/token", "/revoke", "/introspect", "/register", "/userinfo")
BACK_CHANNEL_PREFIXES = ("/register/", "/.well-known/", "/v1/")

CORS = CORSConfig(
    allow_origin="*",
    # Authorization and Content-Type are among Chalice's defaults; MCP clients send their protocol version
    allow_headers=["MCP-Protocol-Version"],
    # a browser client must read the RFC 6750 challenge (resource_metadata) and the 503 retry hint
    expose_headers=["WWW-Authenticate", "Retry-After"],
    max_age=600,
)


def back_channel(path: str) -> bool:
    return path in BACK_CHANNEL_PATHS or path.startswith(BACK_CHANNEL_PREFIXES)


def allow_back_channel(app: Chalice) -> None:
    """Give every view of every back-channel path the one CORS configuration (Chalice wants one per path)."""
    for path, views in app.routes.items():
        if back_channel(path):
            for view in views.values():
                view.cors = CORS
