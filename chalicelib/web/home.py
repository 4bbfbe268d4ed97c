"""The landing page (/) and our own 404 for every path no other route serves.

API Gateway answers a path it has no resource for with 403 "Missing Authentication Token", or, when the
request carries an Authorization header, with a message that quotes that header back (a bearer token
in a response body). A greedy `/{proxy+}` route takes every such path instead: API Gateway prefers any
concrete resource over it, so it serves only what nothing else does (`chalice local` and chalice.test
are taught the same order by chalicelib.local_routes). `/{proxy+}` never matches `/` itself, hence the
explicit `/` route. A known path with a method it does not serve is web/methods.py's 405.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib.oauth.sessions import csrf_token
from chalicelib.web.common import HTTP_METHODS, json_response, page, page_guarded, without_body
from chalicelib.web.cookies import current_session
from chalicelib.web.cors import back_channel
from chalicelib.wiring import services

bp = Blueprint(__name__)

EVERY_CONTENT_TYPE = ["*/*"]
GREEDY = "/{proxy+}"
NOT_FOUND = {"error": "not_found", "error_description": "there is no such endpoint"}  # fixed: never the path
METADATA_LINKS = (
    ("OpenID Connect discovery", "/.well-known/openid-configuration"),
    ("Authorization server metadata (RFC 8414)", "/.well-known/oauth-authorization-server"),
    ("JSON Web Key Set", "/.well-known/jwks.json"),
)


def signed_in_page(session_id: str | None, cookies: list[str] | None = None, status: int = 200) -> Response:
    """The landing page; with a session, it says so and offers the account pages and sign-out."""
    settings = services().settings
    headers: dict[str, str | list[str]] = {"Set-Cookie": cookies} if cookies else {}
    return page(
        "home.html", status=status, headers=headers, title="Clipron accounts" if session_id is None else
        "You are signed in", static_prefix=urlsplit(settings.issuer).path, issuer=settings.issuer,
        metadata=[(label, settings.url(path)) for label, path in METADATA_LINKS],
        logout_csrf=csrf_token(session_id, "logout") if session_id else None,
    )


@bp.route("/", methods=["GET"])
@page_guarded
def landing() -> Response:
    s = services()
    session_id, session = current_session(bp.current_request, s.sessions, s.settings)
    return signed_in_page(session_id if session is not None else None)


def wants_html(request: Request) -> bool:
    """A browser navigating (Accept names text/html) to a path outside the back channel gets a page."""
    accept = (request.headers.get("accept") or "").lower()
    event = request.to_original_event() or {}
    # request.path is the route (/{proxy+}); API Gateway sets "path", chalice local only requestContext's
    path = event.get("path") or (event.get("requestContext") or {}).get("path") or ""
    return "text/html" in accept and not back_channel(path)


# every method, OPTIONS too: a preflight for a concrete back-channel path is answered by that path
@bp.route(GREEDY, methods=list(HTTP_METHODS), content_types=EVERY_CONTENT_TYPE)
def not_found() -> Response:
    return not_found_response(bp.current_request)


def not_found_response(request: Request) -> Response:
    if wants_html(request):
        response = page("error.html", status=404, title="Page not found",
                        message="There is no page at this address. Start again from the Clipron home page.",
                        static_prefix=urlsplit(services().settings.issuer).path)
    else:
        response = json_response(NOT_FOUND, 404)
    return without_body(response) if request.method == "HEAD" else response
