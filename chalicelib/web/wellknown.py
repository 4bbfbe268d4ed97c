"""Public discovery documents: RFC 8414 / OpenID Connect Discovery metadata and the JWKS (no KMS, no auth)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.oauth.metadata import authorization_server_metadata
from chalicelib.web.common import guarded, json_response
from chalicelib.wiring import services

bp = Blueprint(__name__)

PUBLIC = {"Cache-Control": "public, max-age=300"}  # CORS: web/cors.py


@bp.route("/.well-known/oauth-authorization-server", methods=["GET"])
@bp.route("/.well-known/openid-configuration", methods=["GET"])
@guarded
def authorization_server() -> Response:
    """RFC 8414 and OpenID Connect Discovery 1.0 §4: one document, so they never disagree."""
    return json_response(authorization_server_metadata(services().settings), headers=PUBLIC)


@bp.route("/.well-known/jwks.json", methods=["GET"])
@guarded
def jwks() -> Response:
    return json_response(services().keyring.jwks(), headers=PUBLIC)
