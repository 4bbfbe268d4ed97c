"""POST /token: parse the form strictly, call oauth/grants.py, render JSON with no-store (errors too)."""

from __future__ import annotations

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib import clock
from chalicelib.oauth.errors import InvalidRequest
from chalicelib.oauth.grants import TokenEndpoint
from chalicelib.web.common import form_parameters, guarded, json_response
from chalicelib.wiring import services

bp = Blueprint(__name__)
# Chalice matches "*/*" against any Content-Type (chalice.app._matches_content_type), so it never answers
# 415 with its own body here: every content type reaches form_parameters and gets an OAuth error.
EVERY_CONTENT_TYPE = ["*/*"]


def endpoint() -> TokenEndpoint:
    s = services()
    return TokenEndpoint(s.store, s.clients, s.access_tokens, s.settings, clock.now)


def single_header(request: Request, name: str) -> str | None:
    """A header's value, refusing a header sent twice (API Gateway would silently keep the last one)."""
    multi = (request.to_original_event() or {}).get("multiValueHeaders") or {}
    values = [v for key, vs in multi.items() if key.lower() == name for v in (vs or [])]
    if len(values) > 1:
        raise InvalidRequest(f"the {name} header was sent more than once")
    return request.headers.get(name)


@bp.route("/token", methods=["POST"], content_types=EVERY_CONTENT_TYPE)
@guarded
def token() -> Response:
    request = bp.current_request
    if request.query_params:  # RFC 6749 §3.2: the body only; secrets never travel in the URL
        raise InvalidRequest("token request parameters must be sent in the form body, not the URL")
    form = form_parameters(request)
    return json_response(endpoint().handle(form, single_header(request, "authorization")))


@bp.route("/token", methods=["GET", "PUT", "DELETE", "PATCH"], content_types=EVERY_CONTENT_TYPE)
@guarded
def token_wrong_method() -> Response:
    body = {"error": "invalid_request", "error_description": "the token endpoint accepts POST only"}
    return json_response(body, 405, {"Allow": "POST"})
