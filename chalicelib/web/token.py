"""POST /token: parse the form strictly, call oauth/grants.py, render JSON with no-store (errors too)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.web.common import client_request, guarded, json_response, source_address
from chalicelib.wiring import services

bp = Blueprint(__name__)
# Chalice matches "*/*" against any Content-Type (chalice.app._matches_content_type), so it never answers
# 415 with its own body here: every content type reaches form_parameters and gets an OAuth error.
EVERY_CONTENT_TYPE = ["*/*"]
TARGETS = frozenset({"resource", "audience"})  # RFC 8707 §2, RFC 8693 §2.1: may be sent several times


@bp.route("/token", methods=["POST"], content_types=EVERY_CONTENT_TYPE)
@guarded
def token() -> Response:
    form, authorization = client_request(bp.current_request, TARGETS)
    return json_response(services().token_endpoint.handle(form, authorization, source_address(bp.current_request)))

