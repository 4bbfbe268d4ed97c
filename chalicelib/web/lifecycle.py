"""POST /revoke (RFC 7009) and POST /introspect (RFC 7662): parse, authenticate the client, call oauth/."""

from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib import clock
from chalicelib.oauth.clients import authenticate, client_credentials
from chalicelib.oauth.errors import InvalidRequest
from chalicelib.oauth.introspection import Introspector
from chalicelib.oauth.revocation import Revoker
from chalicelib.store.records import ClientRecord
from chalicelib.web.common import ANY_BODY, NO_STORE, form_parameters, guarded, json_response
from chalicelib.wiring import services

bp = Blueprint(__name__)
OTHER_METHODS = ["GET", "PUT", "DELETE", "PATCH"]


def _authenticated(form: dict[str, str]) -> ClientRecord:
    request = bp.current_request
    if request.query_params:  # credentials and tokens never travel in the URL
        raise InvalidRequest("parameters must be sent in the form body, not the URL")
    s = services()
    credentials = client_credentials(request.headers.get("authorization"), form)
    return authenticate(s.clients, credentials, clock.now(), s.settings.client_auth_max_failures)


def _token(form: dict[str, str]) -> str:
    token = form.get("token")
    if token is None:
        raise InvalidRequest("the token parameter is required")
    return token


@bp.route("/revoke", methods=["POST"], content_types=ANY_BODY)
@guarded
def revoke() -> Response:
    form = form_parameters(bp.current_request)
    client = _authenticated(form)
    s = services()
    Revoker(s.store, s.access_tokens, s.settings.api_audience, clock.now).revoke(client, _token(form))
    return Response(body="", status_code=200, headers={**NO_STORE, "Content-Type": "text/plain"})


@bp.route("/introspect", methods=["POST"], content_types=ANY_BODY)
@guarded
def introspect() -> Response:
    form = form_parameters(bp.current_request)
    client = _authenticated(form)
    s = services()
    introspector = Introspector(s.store, s.access_tokens, s.settings.api_audience, clock.now)
    return json_response(introspector.introspect(client, _token(form)))


def _post_only(name: str) -> Response:
    body = {"error": "invalid_request", "error_description": f"the {name} endpoint accepts POST only"}
    return json_response(body, 405, {"Allow": "POST"})


@bp.route("/revoke", methods=OTHER_METHODS, content_types=ANY_BODY)
@guarded
def revoke_wrong_method() -> Response:
    return _post_only("revocation")


@bp.route("/introspect", methods=OTHER_METHODS, content_types=ANY_BODY)
@guarded
def introspect_wrong_method() -> Response:
    return _post_only("introspection")
