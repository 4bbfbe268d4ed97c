"""/login and /logout: SECURITY-TESTS.md group L (login CSRF, cookies, fixation, throttling, enumeration...)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from tests.authorize_support import (
    EMAIL,
    ISS,
    PASSWORD,
    Browser,
    add_fixture_clients,
    add_user,
    az,
    hidden,
    location,
    request_id_of,
    sign_in,
)

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

PAGE_SECURITY = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@pytest.fixture
def user(aws):
    add_fixture_clients(aws.store)
    return add_user(aws.store)


def session_cookies(response) -> list[str]:
    values = response.headers.get("Set-Cookie") or []
    values = [values] if isinstance(values, str) else values
    return [v for v in values if re.match(r"(__Host-)?clipron_session=[^;]+;", v) and "Max-Age=0" not in v]


def assert_secure_page(response) -> None:
    for name, value in PAGE_SECURITY.items():
        assert response.headers[name] == value
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]  # no script at all
    assert response.headers["Cache-Control"] == "no-store"
    body = response.body.decode()
    assert "<script" not in body and "http-equiv" not in body
    # no third-party resources: every absolute URL on the page is our own
    assert all(url.startswith(ISS) for url in re.findall(r'(?:href|src|action)="(https?:[^"]*)"', body))


def test_login_page_is_accessible_and_protected(http, user):
    response = Browser(http).get("/login")
    assert response.status_code == 200
    assert_secure_page(response)
    body = response.body.decode()
    assert "Sign in to your Clipron account" in body
    assert '<label for="email">Email</label>' in body and 'id="email"' in body
    assert '<label for="password">Password</label>' in body and 'id="password"' in body
    assert '<button type="submit">Sign in</button>' in body


def test_error_page_is_protected(http, user):
    assert_secure_page(http.get(az(client_id="nope")))


def test_successful_login_sets_a_new_httponly_lax_session_cookie(http, user):
    browser = Browser(http)
    response = sign_in(browser)
    assert response.status_code == 200
    assert "You are signed in" in response.body.decode()
    [cookie] = session_cookies(response)
    assert cookie.startswith("clipron_session=")
    assert "; HttpOnly" in cookie and "; SameSite=Lax" in cookie and "; Path=/" in cookie
    assert "clipron_pre" not in browser.cookies  # the pre-session is spent
    assert EMAIL not in " ".join(response.headers["Set-Cookie"])  # no personal data in cookies


def test_outside_local_cookies_are_secure_and_host_prefixed(http, aws, user):
    aws.settings = dataclasses.replace(aws.settings, stage="dev")
    browser = Browser(http)
    form_page = browser.get("/login")
    assert "Strict-Transport-Security" in form_page.headers
    assert "__Host-clipron_pre" in browser.cookies
    [cookie] = session_cookies(sign_in(browser))
    assert cookie.startswith("__Host-clipron_session=")
    for attribute in ("; Secure", "; HttpOnly", "; SameSite=Lax", "; Path=/"):
        assert attribute in cookie
    assert "Domain=" not in cookie


def test_session_fixation_a_login_always_gets_a_new_session(http, aws, user):
    browser = Browser(http)
    sign_in(browser)
    first = browser.cookies["clipron_session"]
    sign_in(browser)
    second = browser.cookies["clipron_session"]
    assert first != second
    assert aws.sessions.resolve(first) is None  # the previous session was ended
    assert aws.sessions.resolve(second) is not None


def test_planted_session_id_is_never_adopted(http, aws, user):
    browser = Browser(http)
    browser.cookies["clipron_session"] = "attacker-chosen-value"
    sign_in(browser)
    assert browser.cookies["clipron_session"] != "attacker-chosen-value"
    assert aws.store.get_session(digest("attacker-chosen-value")) is None


def _login_post(browser: Browser, csrf: str | None, headers: dict[str, str] | None = None):
    form = {"email": EMAIL, "password": PASSWORD}
    if csrf is not None:
        form["csrf_token"] = csrf
    return browser.post("/login", form, headers=headers)


def test_login_csrf(http, user):
    browser = Browser(http)
    token = hidden(browser.get("/login"), "csrf_token")
    other = Browser(http)
    other_token = hidden(other.get("/login"), "csrf_token")
    attempts = [
        _login_post(browser, None),
        _login_post(browser, "wrong"),
        _login_post(browser, other_token),  # a token from another pre-session
        _login_post(browser, token, {"Origin": "https://evil.example"}),
        _login_post(browser, token, {"Sec-Fetch-Site": "cross-site"}),
        _login_post(Browser(http), token),  # no pre-session cookie at all
    ]
    for response in attempts:
        assert response.status_code == 403
        assert not session_cookies(response)
    cross_site_claiming_our_origin = _login_post(browser, token, {"Origin": ISS, "Sec-Fetch-Site": "same-site"})
    assert cross_site_claiming_our_origin.status_code == 403
    # Chromium posts our no-referrer pages' forms with `Origin: null`; Sec-Fetch-Site decides
    assert _login_post(browser, token, {"Origin": "null", "Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_failed_login_is_generic_whether_or_not_the_email_exists(http, user):
    browser = Browser(http)
    token = hidden(browser.get("/login"), "csrf_token")
    wrong_password = browser.post("/login", {"csrf_token": token, "email": EMAIL, "password": "nope-nope"})
    unknown_user = browser.post("/login", {"csrf_token": token, "email": "who@example.com", "password": "nope-nope"})
    assert wrong_password.status_code == unknown_user.status_code == 400
    assert wrong_password.body == unknown_user.body
    assert "The email or password is incorrect." in wrong_password.body.decode()
    assert not session_cookies(wrong_password) and not session_cookies(unknown_user)


def test_login_is_throttled_then_allowed_after_the_window(http, aws, user):
    aws.settings = dataclasses.replace(aws.settings, login_max_failures=3)
    browser = Browser(http)
    token = hidden(browser.get("/login"), "csrf_token")
    for _ in range(3):
        assert browser.post("/login", {"csrf_token": token, "email": EMAIL, "password": "bad-guess"}).status_code == 400
    throttled = browser.post("/login", {"csrf_token": token, "email": EMAIL, "password": PASSWORD})
    assert throttled.status_code == 429
    assert "Too many failed sign-ins" in throttled.body.decode()
    assert not session_cookies(throttled)
    clock.travel(aws.settings.login_window_seconds)
    assert session_cookies(browser.post("/login", {"csrf_token": token, "email": EMAIL, "password": PASSWORD}))


def test_next_and_return_to_are_ignored(http, user):
    browser = Browser(http)
    form_page = browser.get("/login?next=https%3A%2F%2Fevil.example&return_to=%2F%2Fevil.example")
    assert "evil.example" not in form_page.body.decode()
    form = {"csrf_token": hidden(form_page, "csrf_token"), "email": EMAIL, "password": PASSWORD,
            "next": "https://evil.example", "return_to": "//evil.example"}
    response = browser.post("/login", form)
    assert response.status_code == 200 and "Location" not in response.headers


def test_login_resumes_only_through_the_parked_request(http, user):
    browser = Browser(http)
    start = browser.get(az())
    assert start.status_code == 302
    request_id = request_id_of(location(start))
    assert location(start) == f"{ISS}/login?request={request_id}"
    response = sign_in(browser, request_id=request_id)
    assert response.status_code == 303
    assert location(response) == f"{ISS}/consent?request={request_id}"


def test_login_page_escapes_what_it_echoes(http, user):
    response = Browser(http).get('/login?request=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E')
    body = response.body.decode()
    assert "<script>" not in body and "&#34;&gt;&lt;script&gt;" in body


def test_logout_ends_the_session_and_clears_the_cookie(http, aws, user):
    browser = Browser(http)
    signed_in = sign_in(browser)
    session_id = browser.cookies["clipron_session"]
    forged = browser.post("/logout", {"csrf_token": "forged"})
    assert forged.status_code == 403 and aws.sessions.resolve(session_id) is not None
    cross_site = browser.post("/logout", {"csrf_token": hidden(signed_in, "csrf_token")},
                              headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    response = browser.post("/logout", {"csrf_token": hidden(signed_in, "csrf_token")})
    assert response.status_code == 200 and "signed out" in response.body.decode()
    assert any(c.startswith("clipron_session=;") and "Max-Age=0" in c for c in response.headers["Set-Cookie"])
    assert aws.sessions.resolve(session_id) is None
    assert "clipron_session" not in browser.cookies


def test_login_page_failure_is_an_error_page_not_a_trace(http, aws, user, monkeypatch):
    from chalicelib.records import StoreUnavailable

    def broken(*args, **kwargs):
        raise StoreUnavailable("timeout")

    browser = Browser(http)
    token = hidden(browser.get("/login"), "csrf_token")
    monkeypatch.setattr(aws.store, "take_slot", broken)
    response = browser.post("/login", {"csrf_token": token, "email": EMAIL, "password": PASSWORD})
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Traceback" not in response.body.decode()
