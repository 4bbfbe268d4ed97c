"""The Clipron resource API under /v1, and its RFC 9728 protected-resource metadata.

The bearer check is a decorator in this view layer, not a Chalice authorizer: an authorizer's
refusals are API Gateway's own `{"message": "Unauthorized"}` 401s without our RFC 6750
WWW-Authenticate challenge, it cannot answer 403 insufficient_scope per route, and API Gateway
caches its policy (300 s by default) on top of the token's own lifetime.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from chalice import Blueprint, Response

from chalicelib.api import service
from chalicelib.oauth.resource import METADATA_PATH, protected_resource_metadata
from chalicelib.oauth.tokens import AccessTokenClaims
from chalicelib.web.common import ANY_BODY, guarded, json_body, json_response
from chalicelib.web.wellknown import PUBLIC
from chalicelib.wiring import services

bp = Blueprint(__name__)


def bearer(scope: str | None) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Let the view run only for a valid user access token carrying `scope` (None: any scope)."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            claims = services().resource_guard.check(bp.current_request.headers.get("authorization"), scope)
            return view(claims, *args, **kwargs)

        return guarded(wrapper)  # OAuthError → its JSON + challenge header; store faults → 503

    return decorate


@bp.route("/v1/me", methods=["GET"])
@bearer(None)
def me(claims: AccessTokenClaims) -> Response:
    return json_response({"sub": claims.sub, "client_id": claims.client_id, "scope": " ".join(claims.scope)})


@bp.route("/v1/analyses", methods=["GET"])
@bearer("read:analysis")
def analyses(claims: AccessTokenClaims) -> Response:
    return json_response({"analyses": services().api.analyses(claims.sub)})


@bp.route("/v1/projects", methods=["POST"], content_types=ANY_BODY)
@bearer("write:project")
def create_project(claims: AccessTokenClaims) -> Response:
    try:
        project = services().api.create_project(claims.sub, json_body(bp.current_request))
    except service.InvalidInput as error:
        return json_response(error.body(), 400)
    return json_response(project, 201)


@bp.route(METADATA_PATH, methods=["GET"])
@guarded
def resource_metadata() -> Response:
    return json_response(protected_resource_metadata(services().settings), headers=PUBLIC)
