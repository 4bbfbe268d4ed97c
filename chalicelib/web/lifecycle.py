"""POST /revoke (RFC 7009) and POST /introspect (RFC 7662): parse, call oauth/ (which authenticates the client)."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.web.common import (
    ANY_BODY,
    NO_STORE,
    client_request,
    guarded,
    json_response,
    source_address,
)
from chalicelib.wiring import services

bp = Blueprint(__name__)


@bp.route("/revoke", methods=["POST"], content_types=ANY_BODY)
@guarded
def revoke() -> Response:
    form, authorization = client_request(bp.current_request)
    services().revoker.handle(form, authorization, source_address(bp.current_request))
    return Response(body="", status_code=200, headers={**NO_STORE, "Content-Type": "text/plain"})


@bp.route("/introspect", methods=["POST"], content_types=ANY_BODY)
@guarded
def introspect() -> Response:
    form, authorization = client_request(bp.current_request)
    return json_response(services().introspector.handle(form, authorization, source_address(bp.current_request)))

