"""Every method on every path reaches the app: what a path does not serve gets our 405, never the gateway's.

API Gateway answers a method a resource does not define (DELETE /token, PUT /authorize) with its own
403 "Missing Authentication Token", which quotes the request's Authorization header; the greedy
`/{proxy+}` (web/home.py) takes unknown paths only. Once every blueprint is registered,
`answer_every_method` gives each path a view for every method it lacks: a 405 in OAuth's JSON shape with
an Allow header (a browser on a page gets the 405 page). The paths API Gateway creates between routes
(/v1, /.well-known, /developer) get every method too, answered by our 404. OPTIONS stays chalice's on a
path with CORS: there it is the preflight, answered by API Gateway's mock (web/cors.py).
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

from chalice import Chalice, Response

from chalicelib.web.common import HTTP_METHODS, method_not_allowed, page, without_body
from chalicelib.web.cors import back_channel
from chalicelib.web.home import GREEDY, not_found_response, wants_html
from chalicelib.wiring import services

EVERY_CONTENT_TYPE = ["*/*"]  # chalice's own 415 must not answer before our 405
NOT_ALLOWED = "this endpoint does not accept this method; the Allow header lists those it does"  # fixed


def answer_every_method(app: Chalice) -> None:
    """After the blueprints, before web/cors.py: every path (and every path between them) takes every method."""
    for path in _between_paths(app.routes):
        app.route(path, methods=_missing(path, {}), content_types=EVERY_CONTENT_TYPE,
                  name="not_found_between")(_not_found(app))
    for path, views in list(app.routes.items()):
        missing = _missing(path, views)
        if missing:
            allow = ", ".join(method for method in HTTP_METHODS if method in views)
            app.route(path, methods=missing, content_types=EVERY_CONTENT_TYPE,
                      name="method_not_allowed")(_refuse(app, allow))


def _missing(path: str, views: dict[str, Any]) -> list[str]:
    """The methods a path has no view for; OPTIONS only where it is not the CORS preflight."""
    preflight = back_channel(path) or any(view.cors for view in views.values())
    return [m for m in HTTP_METHODS if m not in views and not (m == "OPTIONS" and preflight)]


def _between_paths(routes: dict[str, Any]) -> list[str]:
    """Paths API Gateway creates as parents of routes (/v1 for /v1/me) that no route serves itself."""
    parents = set()
    for path in routes:
        segments = path.strip("/").split("/")
        parents.update("/" + "/".join(segments[:depth]) for depth in range(1, len(segments)))
    return sorted(parent for parent in parents if parent not in routes and parent != GREEDY)


def _refuse(app: Chalice, allow: str) -> Callable[..., Response]:
    def refuse(**_path_parameters: str) -> Response:
        request = app.current_request
        if wants_html(request):
            response = page("error.html", status=405, headers={"Allow": allow}, title="Method not allowed",
                            message="This page cannot be used that way. Start again from the Clipron home page.",
                            static_prefix=urlsplit(services().settings.issuer).path)
        else:
            response = method_not_allowed(NOT_ALLOWED, allow)
        return without_body(response) if request.method == "HEAD" else response

    return refuse


def _not_found(app: Chalice) -> Callable[..., Response]:
    def not_found(**_path_parameters: str) -> Response:
        return not_found_response(app.current_request)

    return not_found
