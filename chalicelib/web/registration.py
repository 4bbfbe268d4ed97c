"""POST /register (RFC 7591) and GET/PUT/DELETE /register/{client_id} (RFC 7592): parse, call, answer."""

from __future__ import annotations

import json
from typing import Any

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib.oauth.dynamic_registration import Registrar
from chalicelib.oauth.errors import InvalidClientMetadata, InvalidRequest
from chalicelib.web.common import ANY_BODY, MAX_BODY_BYTES, NO_STORE, guarded, json_response
from chalicelib.wiring import services

bp = Blueprint(__name__)


def registrar() -> Registrar:
    s = services()
    return Registrar(s.store, s.clients, s.store.clock, s.settings.url)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    if len(names) != len(set(names)):
        raise InvalidClientMetadata("a metadata field appears twice")
    return dict(pairs)


def json_body(request: Request) -> Any:
    """The JSON body, strictly: application/json, UTF-8, bounded, no member named twice."""
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise InvalidRequest("the request body must be application/json")
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest("the request body is too large", status=413)
    try:
        return json.loads(raw.decode("utf-8", errors="strict"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError):
        raise InvalidClientMetadata("the request body is not valid JSON") from None


def _authorization(request: Request) -> str | None:
    return request.headers.get("authorization")


@bp.route("/register", methods=["POST"], content_types=ANY_BODY)
@guarded
def register() -> Response:
    request = bp.current_request
    registration = registrar()
    registration.authorise_registration(_authorization(request))
    return json_response(registration.register(json_body(request)), status=201)


@bp.route("/register/{client_id}", methods=["GET"])
@guarded
def read_registration(client_id: str) -> Response:
    registration = registrar()
    return json_response(registration.read(registration.managed_client(_authorization(bp.current_request), client_id)))


@bp.route("/register/{client_id}", methods=["PUT"], content_types=ANY_BODY)
@guarded
def update_registration(client_id: str) -> Response:
    request = bp.current_request
    registration = registrar()
    client = registration.managed_client(_authorization(request), client_id)  # 401 before reading the body
    return json_response(registration.update(client, json_body(request)))


@bp.route("/register/{client_id}", methods=["DELETE"])
@guarded
def delete_registration(client_id: str) -> Response:
    registration = registrar()
    registration.delete(registration.managed_client(_authorization(bp.current_request), client_id))
    return Response(body="", status_code=204, headers=dict(NO_STORE))


@bp.route("/register", methods=["GET", "PUT", "DELETE", "PATCH"], content_types=ANY_BODY)
@guarded
def register_wrong_method() -> Response:
    body = {"error": "invalid_request", "error_description": "register a client with POST"}
    return json_response(body, 405, {"Allow": "POST"})


@bp.route("/register/{client_id}", methods=["POST", "PATCH"], content_types=ANY_BODY)
@guarded
def registration_wrong_method(client_id: str) -> Response:
    body = {"error": "invalid_request", "error_description": "use GET, PUT or DELETE on a registration"}
    return json_response(body, 405, {"Allow": "GET, PUT, DELETE"})
