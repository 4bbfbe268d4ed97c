"""Relying parties we did not write accept Clipron: Authlib's OpenID Connect client logic (through
examples/clipron_signin.py) validates our ID tokens against the local run (`make run`): signature via
the JWKS, iss, aud, exp, nonce, at_hash and auth_time with max_age; UserInfo; RP-Initiated Logout.

The first test drives the example with requests (a scripted browser); the second with headless Chromium.
"""

from __future__ import annotations

import contextlib
import re
import sys
import time
from html import unescape
from typing import Iterator

import pytest
import requests

from tests.developer_support import DEMO_EMAIL, DEMO_PASSWORD, REGISTRATION_TOKEN, ROOT, free_port
from tests.server_support import served


@pytest.fixture
def server(shared_local_run):
    return shared_local_run


def signin_module():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import clipron_signin
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return clipron_signin


def register(issuer: str, base_url: str) -> dict:
    response = requests.post(issuer + "/register", timeout=10,
                             headers={"Authorization": f"Bearer {REGISTRATION_TOKEN}"},
                             json={"client_name": "Sign in example", "redirect_uris": [base_url + "/callback"],
                                   "scope": "openid profile email",
                                   "post_logout_redirect_uris": [base_url + "/signed-out"]})
    assert response.status_code == 201, response.text
    return response.json()


@contextlib.contextmanager
def signin_app(issuer: str) -> Iterator[tuple[str, object]]:
    """The example served in a thread on a free port; yields its base URL and its Authlib relying party."""
    module = signin_module()
    base_url = f"http://127.0.0.1:{free_port()}"
    client = register(issuer, base_url)
    config = module.Config(issuer, client["client_id"], client["client_secret"], base_url)
    with served(module.serve(config)):
        yield base_url, module.ClipronOpenID(config)


def hidden_fields(page: str) -> dict[str, str]:
    return {unescape(name): unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)}


def test_sign_in_with_clipron_example_signs_in_shows_the_user_and_signs_out(server):
    with signin_app(server.issuer) as (app, _rp):
        browser = requests.Session()
        login = browser.get(app + "/login?max_age=600", timeout=10)
        assert login.url.startswith(server.issuer + "/login?request=")
        authorize = login.history[1].url
        assert "nonce=" in authorize and "code_challenge_method=S256" in authorize and "max_age=600" in authorize
        consent = browser.post(server.issuer + "/login", timeout=10,
                               data={**hidden_fields(login.text), "email": DEMO_EMAIL, "password": DEMO_PASSWORD})
        assert "Sign you in with your Clipron account" in consent.text and "See your name" in consent.text
        home = browser.post(server.issuer + "/consent", timeout=10,
                            data={**hidden_fields(consent.text), "decision": "allow"})
        assert home.status_code == 200 and home.url == app + "/", home.text
        assert '<span id="name">Demo User</span>' in home.text and f'<span id="email">{DEMO_EMAIL}</span>' in home.text
        auth_time = int(re.search(r'id="auth-time">(\d+)<', home.text).group(1))
        assert abs(time.time() - auth_time) < 120

        signed_out = browser.get(app + "/logout", timeout=10)  # id_token_hint: no confirmation needed
        assert signed_out.status_code == 200 and 'id="signed-out"' in signed_out.text, signed_out.text
        assert signed_out.history[1].url.startswith(server.issuer + "/logout?id_token_hint=")
        # the Clipron session ended: a new sign-in shows the login page again
        assert browser.get(app + "/login", timeout=10).url.startswith(server.issuer + "/login?request=")


@pytest.mark.browser
def test_authlib_validates_id_tokens_from_the_browser_flow(server, browser_page):
    from joserfc.errors import InvalidClaimError

    page = browser_page
    module = signin_module()
    with signin_app(server.issuer) as (app, rp):
        page.goto(app + "/")
        page.get_by_role("link", name="Sign in with Clipron").click()
        page.wait_for_url(f"{server.issuer}/login?request=*")
        page.get_by_label("Email").fill(DEMO_EMAIL)
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{server.issuer}/consent?request=*")
        page.get_by_role("button", name="Allow").click()
        page.wait_for_url(app + "/")
        assert page.locator("#name").inner_text() == "Demo User"
        assert page.locator("#email").inner_text() == DEMO_EMAIL

        # Authlib on its own: a fresh sign-in whose tokens this test keeps, validated with max_age
        # (signed in, consent remembered: straight back; the callback is captured, not served by the app)
        session = module.BrowserSession()
        page.route(app + "/callback?*", lambda route: route.fulfill(status=200, body="captured"))
        with page.expect_request(lambda request: request.url.startswith(app + "/callback?")) as callback:
            page.goto(rp.start(session, "300"))
        nonce = session.pending["nonce"]
        token = rp.oauth().fetch_token(rp.server_metadata["token_endpoint"],
                                       authorization_response=callback.value.url,
                                       code_verifier=session.pending["code_verifier"],
                                       state=session.pending["state"])
    options = {"iss": {"values": [server.issuer]}, "auth_time": {"essential": True}}
    claims = rp.parse_id_token(token, nonce, claims_options=options)
    assert claims["aud"] == rp.client_id and claims["iss"] == server.issuer and claims["nonce"] == nonce
    assert time.time() - claims["auth_time"] <= 300 + 30
    with pytest.raises(InvalidClaimError):  # the nonce of another sign-in is refused
        rp.parse_id_token(token, "another-nonce", claims_options=options)
    with pytest.raises(InvalidClaimError):  # at_hash binds the ID token to its access token
        rp.parse_id_token({**token, "access_token": token["access_token"] + "x"}, nonce, claims_options=options)
