"""POST /revoke (RFC 7009) and POST /introspect (RFC 7662): parse, authenticate the client, call oauth/."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import clock
from chalicelib.oauth.clients import ClientAuthLimits, authenticate, client_credentials
from chalicelib.oauth.errors import InvalidRequest
from chalicelib.oauth.introspection import Introspector
from chalicelib.oauth.revocation import Revoker
from chalicelib.records import ClientRecord
from chalicelib.web.common import (
    ANY_BODY,
    NO_STORE,
    client_request,
    guarded,
    json_response,
    method_not_allowed,
    source_address,
)
from chalicelib.wiring import services

bp = Blueprint(__name__)
OTHER_METHODS = ["GET", "PUT", "DELETE", "PATCH"]


def _authenticated() -> tuple[ClientRecord, dict[str, str]]:
    form, authorization = client_request(bp.current_request)
    s = services()
    credentials = client_credentials(authorization, form, source_address(bp.current_request))
    return authenticate(s.clients, credentials, clock.now(), ClientAuthLimits.from_settings(s.settings)), form


def _token(form: dict[str, str]) -> str:
    token = form.get("token")
    if token is None:
        raise InvalidRequest("the token parameter is required")
    return token


@bp.route("/revoke", methods=["POST"], content_types=ANY_BODY)
@guarded
def revoke() -> Response:
    client, form = _authenticated()
    s = services()
    Revoker(s.store, s.access_tokens, clock.now).revoke(client, _token(form))
    return Response(body="", status_code=200, headers={**NO_STORE, "Content-Type": "text/plain"})


@bp.route("/introspect", methods=["POST"], content_types=ANY_BODY)
@guarded
def introspect() -> Response:
    client, form = _authenticated()
    s = services()
    introspector = Introspector(s.store, s.access_tokens, s.resources, clock.now)
    return json_response(introspector.introspect(client, _token(form)))


@bp.route("/revoke", methods=OTHER_METHODS, content_types=ANY_BODY)
@guarded
def revoke_wrong_method() -> Response:
    return method_not_allowed("the revocation endpoint accepts POST only")


@bp.route("/introspect", methods=OTHER_METHODS, content_types=ANY_BODY)
@guarded
def introspect_wrong_method() -> Response:
    return method_not_allowed("the introspection endpoint accepts POST only")
