"""Cookies and same-origin checks for the HTML pages (Chalice has no cookie API)."""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlsplit

from chalice.app import Request

from chalicelib.oauth.sessions import Sessions, csrf_valid
from chalicelib.records import SessionRecord
from chalicelib.settings import Settings
from chalicelib.web.common import form_parameters

SESSION = "clipron_session"
PRE_SESSION = "clipron_pre"  # login CSRF: a random value before anyone has logged in
DEVICE = "clipron_device"  # a browser that signed in before: exempt from the per-account login limit


def cookie_name(base: str, settings: Settings) -> str:
    """`__Host-` prefixed (Secure, Path=/, no Domain) everywhere but the plain-http local stage."""
    return f"__Host-{base}" if settings.secure_cookies else base


def cookie_value(header: str | None, name: str) -> str | None:
    """The first non-empty value of cookie `name` in a Cookie header, read pair by pair (RFC 6265 §5.4):
    another cookie on the domain that is not a valid cookie-pair (`prefs={"theme":"dark"}`) is skipped,
    never a reason to ignore the whole header."""
    if not header or len(header) > 8192:
        return None
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name and value.strip():
            return value.strip()
    return None


def read_cookie(request: Request, base: str, settings: Settings) -> str | None:
    return cookie_value(request.headers.get("cookie"), cookie_name(base, settings))


def set_cookie(base: str, value: str, max_age: int, settings: Settings) -> str:
    parts = [f"{cookie_name(base, settings)}={value}", "Path=/", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
    if settings.secure_cookies:
        parts.append("Secure")
    return "; ".join(parts)


def clear_cookie(base: str, settings: Settings) -> str:
    return set_cookie(base, "", 0, settings)


def same_origin(request: Request, settings: Settings) -> bool:
    """A state-changing POST must not come from another site (Sec-Fetch-Site, then Origin).

    Clients that send neither (curl, old browsers) still need the CSRF token every form carries.
    Sec-Fetch-Site, when sent, decides alone: our pages send `Referrer-Policy: no-referrer`, under
    which Chromium posts their forms with `Origin: null`.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    issuer = urlsplit(settings.issuer)
    return origin == f"{issuer.scheme}://{issuer.netloc}"


def current_session(
    request: Request, sessions: Sessions, settings: Settings
) -> tuple[str | None, SessionRecord | None]:
    """The browser's session id (from its cookie) and its live session record, if any."""
    session_id = read_cookie(request, SESSION, settings)
    return session_id, sessions.resolve(session_id)


def checked_form(
    request: Request, settings: Settings, secret_id: str | None, purpose: str | Callable[[dict[str, str]], str]
) -> dict[str, str] | None:
    """The POSTed form when it is same-origin and carries the CSRF token bound to `secret_id` (the
    (pre-)session id) and `purpose` (a string, or derived from the form, e.g. a parked request id);
    None when either check fails."""
    if not same_origin(request, settings):
        return None
    form = form_parameters(request)
    expected = purpose(form) if callable(purpose) else purpose
    return form if csrf_valid(secret_id, expected, form.get("csrf_token")) else None
