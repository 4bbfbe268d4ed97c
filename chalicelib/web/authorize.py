"""The front channel: /authorize, /login, /logout and /consent (HTML; parse, call oauth/, render).

Every page goes through `page_guarded` (an error page, never JSON or a trace) and carries the
page security headers of web.common.page. Every state-changing POST checks the origin and a CSRF
token derived from the (pre-)session; the flow resumes only through the parked request id.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

from chalice import Blueprint, Response

from chalicelib import clock
from chalicelib.crypto.secrets import new_token
from chalicelib.oauth import accounts
from chalicelib.oauth.authorize import (
    AuthorizationFlow,
    AuthorizationRequest,
    ParkedRequestGone,
    Step,
    UntrustedRequest,
    describe_scopes,
)
from chalicelib.oauth.cimd import document_host
from chalicelib.oauth.client_display import display_name, redirect_target
from chalicelib.oauth.logout import PARAMETERS as LOGOUT_PARAMETERS
from chalicelib.oauth.logout import LogoutRefused, LogoutRequest
from chalicelib.oauth.sessions import csrf_token
from chalicelib.oauth.throttle import Throttled
from chalicelib.records import SessionRecord
from chalicelib.web.common import (
    ANY_BODY,
    NO_STORE,
    PAGE_HEADERS,
    error_page,
    form_pairs,
    form_parameters,
    page,
    page_guarded,
    query_pairs,
    query_parameters,
    source_address,
)
from chalicelib.web.cookies import (
    DEVICE,
    PRE_SESSION,
    SESSION,
    checked_form,
    clear_cookie,
    current_session,
    read_cookie,
    set_cookie,
)
from chalicelib.web.home import signed_in_page
from chalicelib.wiring import services

bp = Blueprint(__name__)

PRE_SESSION_SECONDS = 3600
LOGIN_TITLE = "Sign in to your Clipron account"
# an origin safe to paste into a CSP header (no quotes, separators or wildcards)
_CSP_ORIGIN = re.compile(r"^(https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|http://\[::1\](:[0-9]{1,5})?|[a-z][a-z0-9+.\-]*:)$")
GONE = (
    "This sign-in request has expired or was already used. "
    "Go back to the application and start again."
)


def _flow() -> AuthorizationFlow:
    return services().authorization_flow


def _session() -> tuple[str | None, SessionRecord | None]:
    svc = services()
    return current_session(bp.current_request, svc.sessions, svc.settings)


def _redirect(location: str, status: int, cookies: list[str] | None = None) -> Response:
    headers: dict[str, str | list[str]] = {"Location": location, **NO_STORE, "Referrer-Policy": "no-referrer"}
    if cookies:
        headers["Set-Cookie"] = cookies
    return Response(body="", status_code=status, headers=headers)


def _redirect_status() -> int:
    """302 after GET; 303 after POST, so the browser never re-posts the form (RFC 9700 §4.12)."""
    return 303 if bp.current_request.method == "POST" else 302


def _resume_url(path: str, request_id: str) -> str:
    return services().settings.url(path) + "?" + urlencode({"request": request_id})


def _follow(step: Step) -> Response:
    if step.kind == "redirect":
        assert step.location is not None
        return _redirect(step.location, _redirect_status())
    if step.kind == "confirm":
        return _error_for_untrusted_client(step)
    assert step.request_id is not None
    return _redirect(_resume_url("/login" if step.kind == "login" else "/consent", step.request_id),
                     _redirect_status())


def _allowing_redirect_to(redirect_uri: str | None) -> dict[str, str]:
    """CSP for a page whose form ends in a redirect to the client: browsers apply `form-action` to the
    whole redirect chain of a form submission, so the one validated redirect origin is added."""
    if redirect_uri is None:
        return {}
    parts = urlsplit(redirect_uri)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
    if not _CSP_ORIGIN.match(origin):
        return {}
    policy = PAGE_HEADERS["Content-Security-Policy"].replace("form-action 'self'", f"form-action 'self' {origin}")
    return {"Content-Security-Policy": policy}


def _parked(request_id: str | None) -> AuthorizationRequest | None:
    if request_id is None:
        return None
    try:
        return _flow().parked(request_id)
    except ParkedRequestGone:
        return None


# what the user reads about an error we do not redirect automatically (fixed texts, by error code)
ERROR_EXPLANATIONS = {
    "access_denied": "You chose not to allow this application.",
    "login_required": "The application asked to continue without showing you a sign-in page.",
    "consent_required": "The application asked to continue without asking for your permission.",
    "temporarily_unavailable": "Clipron is briefly unavailable. Please try again.",
}
DEFAULT_EXPLANATION = "The application sent a request Clipron cannot accept."


def _error_for_untrusted_client(step: Step) -> Response:
    """RFC 9700 §4.11.2: an error for an app Clipron has not verified stays on our page; the user may
    follow the link back to the app (its scheme and host shown), nothing goes there by itself."""
    assert step.location is not None and step.error is not None and step.client is not None
    error = step.error
    return page(
        "redirect_notice.html",
        status=200 if error.error == "access_denied" else 400,
        title="This request cannot be completed" if error.error != "access_denied" else "Access not allowed",
        explanation=ERROR_EXPLANATIONS.get(error.error, DEFAULT_EXPLANATION),
        error_code=error.error,
        description=error.description,
        client_name=display_name(step.client.name),
        target=redirect_target(step.location),
        location=step.location,
    )


def _forbidden() -> Response:
    return error_page("Request refused", "This form was not sent from a Clipron page. Reload the page and try again.",
                      403)


# --- /authorize ---------------------------------------------------------------------------------


@bp.route("/authorize", methods=["GET", "POST"], content_types=ANY_BODY)
@page_guarded
def authorize() -> Response:
    request = bp.current_request
    pairs = query_pairs(request) if request.method == "GET" else form_pairs(request)
    _, session = _session()
    try:
        step = _flow().start(pairs, session, source_address(request))
    except UntrustedRequest as error:
        return error_page("This request cannot be completed", error.message)
    return _follow(step)


# --- /login ----------------------------------------------------------------------------


def _login_page(pre_session: str, request_id: str | None, status: int = 200, error: str | None = None,
                headers: dict[str, str | list[str]] | None = None, email: str | None = None) -> Response:
    parked = _parked(request_id)
    return page(
        "login.html",
        status=status,
        headers={**_allowing_redirect_to(parked.redirect_uri if parked else None), **(headers or {})},
        email=email or (parked.oidc.login_hint if parked else None),  # OIDC Core §3.1.2.1 login_hint
        title=LOGIN_TITLE,
        action=services().settings.url("/login"),
        csrf_token=csrf_token(pre_session, "login"),
        request_id=request_id,
        error=error,
    )


@bp.route("/login", methods=["GET"])
@page_guarded
def login_form() -> Response:
    settings = services().settings
    request_id = query_parameters(bp.current_request).get("request") or None
    pre_session = read_cookie(bp.current_request, PRE_SESSION, settings)
    headers: dict[str, str | list[str]] = {}
    if pre_session is None or len(pre_session) > 128:
        pre_session = new_token()
        headers["Set-Cookie"] = [set_cookie(PRE_SESSION, pre_session, PRE_SESSION_SECONDS, settings)]
    return _login_page(pre_session, request_id, headers=headers)


@bp.route("/login", methods=["POST"], content_types=ANY_BODY)
@page_guarded
def login_submit() -> Response:
    svc = services()
    settings = svc.settings
    request = bp.current_request
    pre_session = read_cookie(request, PRE_SESSION, settings)
    form = checked_form(request, settings, pre_session, "login")
    if form is None or pre_session is None:
        return _forbidden()
    request_id = form.get("request") or None
    device_id = read_cookie(request, DEVICE, settings)
    attempt = accounts.LoginAttempt(form.get("email", ""), form.get("password", ""), source_address(request),
                                    accounts.known_device_user_id(svc.store, device_id))
    try:
        user = accounts.authenticate(svc.store, svc.throttle, accounts.LoginLimits.from_settings(settings), attempt)
    except Throttled as throttled:
        retry = {"Retry-After": str(throttled.retry_after)}
        return _login_page(pre_session, request_id, 429, "Too many failed sign-ins. Try again later.", retry)
    if user is None:
        return _login_page(pre_session, request_id, 400, "The email or password is incorrect.")
    old_session_id, _ = _session()
    svc.sessions.end(old_session_id)
    session_id, _record = svc.sessions.start(user.user_id, user.generation)  # always a new id: no session fixation
    cookies = [
        set_cookie(SESSION, session_id, settings.session_seconds, settings),
        clear_cookie(PRE_SESSION, settings),
    ]
    device_id = accounts.remember_device(svc.store, user.user_id, device_id, clock.now(), settings.known_device_days)
    if device_id is not None:
        cookies.append(set_cookie(DEVICE, device_id, settings.known_device_days * 86400, settings))
    if request_id is not None:
        return _redirect(_resume_url("/consent", request_id), 303, cookies)
    return signed_in_page(session_id, cookies)  # the landing page, signed in: somewhere to go next


# --- /logout: the account's Sign out form and OpenID Connect RP-Initiated Logout 1.0 ----------------


@bp.route("/logout", methods=["GET"])
@page_guarded
def logout_request() -> Response:
    """end_session_endpoint: sign out at once when id_token_hint names the signed-in user, else ask."""
    return _rp_logout(query_parameters(bp.current_request))


@bp.route("/logout", methods=["POST"], content_types=ANY_BODY)
@page_guarded
def logout() -> Response:
    """The Sign out form and the confirmation (CSRF-checked), or an RP's logout request sent by POST."""
    form = form_parameters(bp.current_request)
    if "csrf_token" not in form:
        # an RP's auto-submitted form is cross-site: the SameSite=Lax session cookie only comes with a
        # top-level GET, so the request continues as one
        values = [(name, form[name]) for name in LOGOUT_PARAMETERS if name in form]
        return _redirect(services().settings.url("/logout") + "?" + urlencode(values), 303)
    svc = services()
    session_id = read_cookie(bp.current_request, SESSION, svc.settings)
    if session_id is not None:
        if checked_form(bp.current_request, svc.settings, session_id, "logout") is None:
            return _forbidden()
    try:
        request = services().logout.validate(form)
    except LogoutRefused as refused:
        return error_page("This sign-out request cannot be completed", refused.message)
    return _signed_out(session_id, request)


def _rp_logout(values: dict[str, str]) -> Response:
    try:
        request = services().logout.validate(values)
    except LogoutRefused as refused:
        return error_page("This sign-out request cannot be completed", refused.message)
    session_id, session = _session()
    if not request.needs_confirmation(session):
        return _signed_out(session_id, request)
    assert session_id is not None
    return page(
        "logout_confirm.html",
        headers=_allowing_redirect_to(request.post_logout_redirect_uri),
        title="Sign out of Clipron?",
        client_name=request.client_name,
        action=services().settings.url("/logout"),
        csrf_token=csrf_token(session_id, "logout"),
        fields={"client_id": request.client_id, "post_logout_redirect_uri": request.post_logout_redirect_uri,
                "state": request.state},
    )


def _signed_out(session_id: str | None, request: LogoutRequest) -> Response:
    """End the session, then back to the client's registered URI with state, or the signed-out page."""
    svc = services()
    svc.sessions.end(session_id)
    cookies = [clear_cookie(SESSION, svc.settings)]
    location = request.location()
    if location is not None:
        return _redirect(location, _redirect_status(), cookies)
    return page(
        "notice.html",
        headers={"Set-Cookie": cookies},
        title="You are signed out",
        message="You are signed out of your Clipron account.",
    )


# --- /consent -----------------------------------------------------------------------------------


def _consent_purpose(request_id: str) -> str:
    """The consent form's CSRF token is bound to the session and to this one parked request."""
    return "consent:" + request_id


@bp.route("/consent", methods=["GET"])
@page_guarded
def consent_form() -> Response:
    params = query_parameters(bp.current_request)
    if "decision" in params:
        return error_page("Method not allowed", "A decision can only be sent with the consent form.", 405)
    request_id = params.get("request") or ""
    session_id, session = _session()
    flow = _flow()
    try:
        step, request = flow.resume(request_id, session)
    except ParkedRequestGone:
        return error_page("Request expired", GONE)
    if step.kind != "consent":
        return _follow(step)
    assert session_id is not None
    return page(
        "consent.html",
        headers=_allowing_redirect_to(request.redirect_uri),
        title=f"Allow {display_name(request.client.name)}?",
        client_name=display_name(request.client.name),
        verified=request.client.verified,
        document_host=document_host(request.client.client_id),
        redirect_target=redirect_target(request.redirect_uri),
        scopes=describe_scopes(request),
        resources=[(server.name, server.identifier) for server in request.resources],
        action=services().settings.url("/consent"),
        csrf_token=csrf_token(session_id, _consent_purpose(request_id)),
        request_id=request_id,
    )


@bp.route("/consent", methods=["POST"], content_types=ANY_BODY)
@page_guarded
def consent_submit() -> Response:
    session_id, session = _session()
    form = checked_form(bp.current_request, services().settings, session_id,
                        lambda submitted: _consent_purpose(submitted.get("request") or ""))
    if session is None or form is None:
        return _forbidden()
    request_id = form.get("request") or ""
    decision = form.get("decision")
    if decision not in ("allow", "deny"):
        return error_page("Something is wrong with this request", "Choose Allow or Deny.")
    try:
        step = _flow().decide(request_id, session, allow=decision == "allow")
    except ParkedRequestGone:
        return error_page("Request expired", GONE)
    return _follow(step)
