"""The whole authorization code flow in headless Chromium against a real local run (`python -m chalicelib.local`,
the worker's `shared_local_run`).

Login as the demo user, consent, capture the redirect to the demo redirect URI (nothing listens
there: the test reads the URL of the request the browser makes), then exchange the code at POST /token.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest

from chalicelib.local import DEFAULTS
from tests.authorize_support import CH, V

pytestmark = pytest.mark.browser

STATE = "browser state & = + % é"


@pytest.fixture
def local_run(shared_local_run) -> str:
    return shared_local_run.issuer


def _exchange(issuer: str, code: str, redirect_uri: str) -> tuple[int, dict]:
    basic = base64.b64encode(f"{DEFAULTS['DEMO_CLIENT_ID']}:{DEFAULTS['DEMO_CLIENT_SECRET']}".encode()).decode()
    body = urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                      "code_verifier": V}).encode()
    request = urllib.request.Request(issuer + "/token", data=body, method="POST", headers={
        "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_login_consent_redirect_and_code_exchange(local_run, browser_page):
    page = browser_page
    issuer = local_run
    redirect_uri = DEFAULTS["DEMO_REDIRECT_URI"]
    query = urlencode({"response_type": "code", "client_id": DEFAULTS["DEMO_CLIENT_ID"], "redirect_uri": redirect_uri,
                       "scope": "read:analysis read:project", "state": STATE, "code_challenge": CH,
                       "code_challenge_method": "S256"}, quote_via=quote)

    login = page.goto(f"{issuer}/authorize?{query}")
    assert login is not None and login.status == 200
    assert login.headers["x-frame-options"] == "DENY"
    assert page.title().startswith("Sign in to your Clipron account")
    page.get_by_label("Email").fill(DEFAULTS["DEMO_EMAIL"])
    page.get_by_label("Password").fill(DEFAULTS["DEMO_PASSWORD"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{issuer}/consent?request=*")
    assert page.get_by_text("Demo App wants to access your Clipron account").is_visible()
    assert page.get_by_text("See your projects").is_visible()
    page.keyboard.press("Tab")  # the decision buttons are reachable by keyboard
    page.get_by_role("button", name="Allow").focus()
    # nothing serves the demo redirect URI: capture the request the redirect makes instead of loading it
    with page.expect_request(lambda request: request.url.startswith(redirect_uri + "?")) as callback:
        page.keyboard.press("Enter")
    captured = callback.value.url

    assert captured.startswith(redirect_uri + "?code=")
    params = dict(parse_qsl(urlsplit(captured).query))
    assert params["state"] == STATE
    assert params["iss"] == issuer

    status, tokens = _exchange(issuer, params["code"], redirect_uri)
    assert status == 200, tokens
    assert tokens["token_type"].lower() == "bearer" and tokens["access_token"].count(".") == 2
    assert set(tokens["scope"].split()) == {"read:analysis", "read:project"}
    status, replay = _exchange(issuer, params["code"], redirect_uri)
    assert status == 400 and replay["error"] == "invalid_grant"
