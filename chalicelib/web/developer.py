"""Developer Settings (/developer/apps) and Connected apps (/account/apps): parse, call oauth/developer, render.

Every page needs a signed-in user (GET without one: redirect to /login). Every POST is checked for
same origin and carries a CSRF token derived from the session and the action.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any, Callable
from urllib.parse import urlsplit

from chalice import Blueprint, Response
from chalice.app import Request

from chalicelib.crypto.sealing import open_with_token, seal_with_token
from chalicelib.oauth import scopes as scope_rules
from chalicelib.oauth.developer import APP_TYPE_LABELS, AppForm, AppNotFound, Developer, redirect_uri_lines
from chalicelib.oauth.errors import OAuthError
from chalicelib.oauth.metadata import ENDPOINTS
from chalicelib.oauth.sessions import csrf_token
from chalicelib.records import ClientRecord
from chalicelib.web.common import (
    ANY_BODY,
    NO_STORE,
    error_page,
    page,
    page_guarded,
    query_parameters,
)
from chalicelib.web.cookies import checked_form as verified_form
from chalicelib.web.cookies import clear_cookie, current_session, read_cookie, set_cookie
from chalicelib.wiring import services

bp = Blueprint(__name__)

APP_PAGE_ENDPOINTS = (  # what a developer copies into a client library, beside the client id
    ("Authorization endpoint", ENDPOINTS["authorization_endpoint"]),
    ("Token endpoint", ENDPOINTS["token_endpoint"]),
    ("Revocation endpoint", ENDPOINTS["revocation_endpoint"]),
    ("Authorization server metadata", "/.well-known/oauth-authorization-server"),
    ("JWKS", ENDPOINTS["jwks_uri"]),
)
SCOPE_FIELD = "scope."  # one checkbox per scope: form_parameters refuses a name sent twice


class Forbidden(Exception):
    """A state-changing request that is cross-site, lacks a valid CSRF token or has no session."""


def developer() -> Developer:
    return services().developer


def signed_in(request: Request) -> tuple[str, str] | None:
    """(session id, user id) of the browser's live session, if any."""
    s = services()
    session_id, session = current_session(request, s.sessions, s.settings)
    return (session_id, session.user_id) if session is not None and session_id else None


def redirect(path: str) -> Response:
    return Response(body="", status_code=303, headers={"Location": services().settings.url(path), **NO_STORE})


def checked_form(request: Request, session_id: str, purpose: str) -> dict[str, str]:
    """The POSTed form once it is same-origin and carries this action's CSRF token; Forbidden otherwise."""
    form = verified_form(request, services().settings, session_id, purpose)
    if form is None:
        raise Forbidden("the form has expired or was not sent from this site; reload the page and try again")
    return form


def html_page(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Pages: the user signs in first; other failures become error pages (web.common.page_guarded)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        request = bp.current_request
        user = signed_in(request)
        if user is None:
            if request.method == "GET":
                return redirect("/login")
            return error_page("Signed out", "Your session has ended. Sign in again.", 403)
        try:
            return handler(*args, user=user, **kwargs)
        except AppNotFound:
            return error_page("Not found", "There is no such application in your account.", 404)
        except Forbidden as error:
            return error_page("Request refused", str(error), 403)

    return page_guarded(wrapper)


def when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def scope_choices(form: dict[str, str]) -> list[str]:
    return [scope for scope in scope_rules.CATALOGUE if form.get(SCOPE_FIELD + scope)]


def render(template: str, session_id: str, status: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> Response:
    def csrf(purpose: str) -> str:
        return csrf_token(session_id, purpose)

    # links and form actions carry the issuer's path (a stage prefix behind API Gateway)
    prefix = urlsplit(services().settings.issuer).path
    return page(template, status=status, headers=headers, csrf=csrf, catalogue=scope_rules.CATALOGUE,
                scope_field=SCOPE_FIELD, app_types=APP_TYPE_LABELS, when=when, static_prefix=prefix, **context)


# -- Developer Settings --------------------------------------------------------------------------

@bp.route("/developer/apps", methods=["GET"])
@html_page
def list_apps(user: tuple[str, str]) -> Response:
    session_id, user_id = user
    return render("developer_apps.html", session_id, apps=developer().apps(user_id))


@bp.route("/developer/apps/new", methods=["GET"])
@html_page
def new_app(user: tuple[str, str]) -> Response:
    values = {"name": "", "app_type": "web", "redirect_uris": "", "post_logout_redirect_uris": "",
              "scopes": ["read:analysis"]}
    return render("developer_new.html", user[0], values=values, error=None)


@bp.route("/developer/apps", methods=["POST"], content_types=ANY_BODY)
@html_page
def create_app(user: tuple[str, str]) -> Response:
    session_id, user_id = user
    form = checked_form(bp.current_request, session_id, "developer:create")
    values = {
        "name": form.get("name", ""),
        "app_type": form.get("app_type", ""),
        "redirect_uris": form.get("redirect_uris", ""),
        "post_logout_redirect_uris": form.get("post_logout_redirect_uris", ""),
        "scopes": scope_choices(form),
    }
    app_form = AppForm(values["name"], values["app_type"], redirect_uri_lines(values["redirect_uris"]),
                       values["scopes"], redirect_uri_lines(values["post_logout_redirect_uris"]))
    try:
        registered = developer().create(user_id, app_form)
    except OAuthError as error:
        return render("developer_new.html", session_id, status=400, values=values, error=error.description)
    return issued(session_id, registered.client.client_id, registered.client_secret, created=True)


@bp.route("/developer/apps/{client_id}", methods=["GET"])
@html_page
def show_app(client_id: str, user: tuple[str, str]) -> Response:
    session_id, user_id = user
    client = developer().app(user_id, client_id)
    saved = query_parameters(bp.current_request).get("saved") == "1"
    return _detail(session_id, client, saved=saved)


def _detail(session_id: str, client: ClientRecord, status: int = 200, error: str | None = None,
            saved: bool = False, values: dict[str, Any] | None = None) -> Response:
    values = values or {"name": client.name, "redirect_uris": "\n".join(client.redirect_uris),
                        "post_logout_redirect_uris": "\n".join(client.post_logout_redirect_uris),
                        "scopes": client.scopes}
    settings = services().settings
    endpoints = [("Issuer", settings.issuer)] + [(label, settings.url(path)) for label, path in APP_PAGE_ENDPOINTS]
    return render("developer_app.html", session_id, status=status, client=client, values=values, error=error,
                  saved=saved, endpoints=endpoints, overlap=settings.secret_rotation_overlap_seconds)


@bp.route("/developer/apps/{client_id}", methods=["POST"], content_types=ANY_BODY)
@html_page
def update_app(client_id: str, user: tuple[str, str]) -> Response:
    session_id, user_id = user
    form = checked_form(bp.current_request, session_id, f"developer:update:{client_id}")
    values = {"name": form.get("name", ""), "redirect_uris": form.get("redirect_uris", ""),
              "post_logout_redirect_uris": form.get("post_logout_redirect_uris", ""), "scopes": scope_choices(form)}
    apps = developer()
    try:
        apps.update(user_id, client_id, values["name"], redirect_uri_lines(values["redirect_uris"]), values["scopes"],
                    redirect_uri_lines(values["post_logout_redirect_uris"]))
    except OAuthError as error:
        return _detail(session_id, apps.app(user_id, client_id), 400, error.description, values=values)
    return redirect(f"/developer/apps/{client_id}?saved=1")


@bp.route("/developer/apps/{client_id}/rotate", methods=["POST"], content_types=ANY_BODY)
@html_page
def rotate_secret(client_id: str, user: tuple[str, str]) -> Response:
    session_id, user_id = user
    unconfirmed = _unconfirmed(client_id, user, "rotate", "Tick the box to confirm the rotation.")
    if unconfirmed:
        return unconfirmed
    client, secret = developer().rotate_secret(user_id, client_id)
    return issued(session_id, client.client_id, secret, created=False)


def _unconfirmed(client_id: str, user: tuple[str, str], action: str, refusal: str) -> Response | None:
    """The app's page with `refusal` (400) unless the owner ticked the confirmation box of `action`'s form."""
    session_id, user_id = user
    form = checked_form(bp.current_request, session_id, f"developer:{action}:{client_id}")
    if form.get("confirm") == "yes":
        return None
    return _detail(session_id, developer().app(user_id, client_id), 400, refusal)


# -- the one-time display of a new secret (Post/Redirect/Get) ---------------------------------------
# The POST that creates an app or rotates a secret answers 303 to /issued, so reloading the page the
# user sees is a GET that creates and rotates nothing. The secret travels to that GET in a cookie
# sealed (AES-GCM) under a key derived from the session id, bound to the app, for REVEAL_SECONDS:
# nothing rests on the server (the table keeps only the digest), no other session can open it, and
# the GET clears it, so a reload shows the app's page instead of the secret.

REVEAL = "clipron_reveal"
REVEAL_SECONDS = 120


def _reveal_purpose(client_id: str) -> str:
    return f"developer:reveal:{client_id}"


def issued(session_id: str, client_id: str, secret: str | None, created: bool) -> Response:
    settings = services().settings
    shown = json.dumps({"secret": secret, "created": created}).encode()
    sealed = seal_with_token(session_id, _reveal_purpose(client_id), shown)
    response = redirect(f"/developer/apps/{client_id}/issued")
    response.headers["Set-Cookie"] = set_cookie(REVEAL, sealed, REVEAL_SECONDS, settings)
    return response


@bp.route("/developer/apps/{client_id}/issued", methods=["GET"])
@html_page
def show_issued(client_id: str, user: tuple[str, str]) -> Response:
    session_id, user_id = user
    settings = services().settings
    client = developer().app(user_id, client_id)  # the owner's app, or "not found"
    sealed = read_cookie(bp.current_request, REVEAL, settings)
    opened = open_with_token(session_id, _reveal_purpose(client_id), sealed) if sealed else None
    if opened is None:  # shown already (a reload), expired, or for another app or session
        return redirect(f"/developer/apps/{client_id}")
    shown = json.loads(opened)
    return render("developer_secret.html", session_id, headers={"Set-Cookie": clear_cookie(REVEAL, settings)},
                  client=client, secret=shown["secret"], created=shown["created"],
                  overlap=settings.secret_rotation_overlap_seconds)


@bp.route("/developer/apps/{client_id}/delete", methods=["POST"], content_types=ANY_BODY)
@html_page
def delete_app(client_id: str, user: tuple[str, str]) -> Response:
    unconfirmed = _unconfirmed(client_id, user, "delete", "Tick the box to confirm the deletion.")
    if unconfirmed:
        return unconfirmed
    developer().delete(user[1], client_id)
    return redirect("/developer/apps")


# -- Connected apps ------------------------------------------------------------------------------

@bp.route("/account/apps", methods=["GET"])
@html_page
def connected_apps(user: tuple[str, str]) -> Response:
    session_id, user_id = user
    revoked = query_parameters(bp.current_request).get("revoked") == "1"
    return render("account_apps.html", session_id, apps=developer().connected_apps(user_id), revoked=revoked)


@bp.route("/account/apps/{client_id}/revoke", methods=["POST"], content_types=ANY_BODY)
@html_page
def revoke_access(client_id: str, user: tuple[str, str]) -> Response:
    session_id, user_id = user
    checked_form(bp.current_request, session_id, f"account:revoke:{client_id}")
    developer().revoke_access(user_id, client_id)
    return redirect("/account/apps?revoked=1")
