"""Cookies and same-origin checks for the HTML pages (Chalice has no cookie API)."""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie
from urllib.parse import urlsplit

from chalice.app import Request

from chalicelib.settings import Settings

SESSION = "clipron_session"
PRE_SESSION = "clipron_pre"  # login CSRF: a random value before anyone has logged in


def cookie_name(base: str, settings: Settings) -> str:
    """`__Host-` prefixed (Secure, Path=/, no Domain) everywhere but the plain-http local stage."""
    return f"__Host-{base}" if settings.secure_cookies else base


def read_cookie(request: Request, base: str, settings: Settings) -> str | None:
    header = request.headers.get("cookie")
    if not header or len(header) > 8192:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(cookie_name(base, settings))
    return morsel.value if morsel is not None and morsel.value else None


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
