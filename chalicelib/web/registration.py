"""POST /register (RFC 7591) and GET/PUT/DELETE /register/{client_id} (RFC 7592): parse, call, answer."""

from __future__ import annotations

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib.oauth.dynamic_registration import Registrar
from chalicelib.oauth.errors import InvalidClientMetadata
from chalicelib.oauth.throttle import source_of
from chalicelib.web.common import (
    ANY_BODY,
    NO_STORE,
    guarded,
    json_body,
    json_response,
    source_address,
)
from chalicelib.wiring import services

bp = Blueprint(__name__)


def registrar() -> Registrar:
    return services().registrar


def _authorization(request: Request) -> str | None:
    return request.headers.get("authorization")


def caller_source(request: Request) -> str:
    """The caller's address as API Gateway saw it, normalised as every throttle counts it (IPv6: its /64)."""
    return source_of(source_address(request))


@bp.route("/register", methods=["POST"], content_types=ANY_BODY)
@guarded
def register() -> Response:
    request = bp.current_request
    registration = registrar()
    with_token = registration.authorise_registration(_authorization(request), caller_source(request))
    return json_response(registration.register(json_body(request, InvalidClientMetadata), with_token), status=201)


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
    return json_response(registration.update(client, json_body(request, InvalidClientMetadata)))


@bp.route("/register/{client_id}", methods=["DELETE"])
@guarded
def delete_registration(client_id: str) -> Response:
    registration = registrar()
    registration.delete(registration.managed_client(_authorization(bp.current_request), client_id))
    return Response(body="", status_code=204, headers=dict(NO_STORE))

