"""The requests-oauthlib example app (examples/clipron_webapp.py) completes the code flow against the local run.

A requests.Session plays the browser (follows redirects, keeps cookies, posts the login and consent
forms); the example's own code does every OAuth step: PKCE S256 + state, code exchange, API calls,
refresh.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
import requests

from tests.developer_support import DEMO_EMAIL, DEMO_PASSWORD, example_app, free_port, register_client


@pytest.fixture
def server(shared_local_run):
    return shared_local_run


def form_fields(html: str) -> dict[str, str]:
    return {unescape(name): unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}


def sign_in_and_decide(issuer: str, app: str, decision: str) -> tuple[requests.Session, requests.Response]:
    """A browser starts at the example's /login, signs in at Clipron as the demo user and answers the consent
    page with `decision`; returns the browser and where that answer led."""
    browser = requests.Session()
    login = browser.get(app + "/login", timeout=10)
    consent = browser.post(issuer + "/login", timeout=10,
                           data={**form_fields(login.text), "email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    return browser, browser.post(issuer + "/consent", data={**form_fields(consent.text), "decision": decision},
                                 timeout=10)


def test_example_app_signs_in_with_pkce_and_calls_the_api(server):
    port = free_port()
    client = register_client(server.issuer, f"http://127.0.0.1:{port}/callback")
    with example_app(server.issuer, client["client_id"], client["client_secret"], port) as app:
        browser = requests.Session()
        # the example sends the browser to /authorize; with no session Clipron shows the login page
        login = browser.get(app + "/login", timeout=10)
        assert login.status_code == 200 and login.url.startswith(server.issuer + "/login?request=")
        authorize = login.history[1].url
        assert "code_challenge_method=S256" in authorize and "state=" in authorize and "code_challenge=" in authorize

        consent = browser.post(server.issuer + "/login", timeout=10,
                               data={**form_fields(login.text), "email": DEMO_EMAIL, "password": DEMO_PASSWORD})
        assert consent.status_code == 200 and consent.url.startswith(server.issuer + "/consent?request=")
        assert "Example App" in consent.text

        signed_in = browser.post(server.issuer + "/consent", data={**form_fields(consent.text), "decision": "allow"},
                                 timeout=10)
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.url.startswith(app + "/callback?code=")
        assert 'id="signed-in"' in signed_in.text
        assert "/v1/me (200)" in signed_in.text and client["client_id"] in signed_in.text
        assert "/v1/analyses (200)" in signed_in.text

        refreshed = browser.get(app + "/refresh", timeout=10)
        assert refreshed.status_code == 200 and 'id="refreshed"' in refreshed.text


def test_example_app_reports_a_denied_consent(server):
    port = free_port()
    client = register_client(server.issuer, f"http://127.0.0.1:{port}/callback", name="Denied App")
    with example_app(server.issuer, client["client_id"], client["client_secret"], port) as app:
        browser, denied = sign_in_and_decide(server.issuer, app, "deny")
        # a self-registered app's redirect URI is not trusted (RFC 9700 §4.11.2): our page tells the user
        # and the user follows its link back to the app, which reports the denial
        assert denied.status_code == 200 and "code=" not in denied.url
        back = unescape(re.search(r'<a href="([^"]+)"[^>]*id="return-link"', denied.text).group(1))
        assert back.startswith(f"http://127.0.0.1:{port}/callback?")
        reported = browser.get(back, timeout=10)
        assert reported.status_code == 400
        assert "access_denied" in reported.text and "code=" not in reported.url


def test_example_app_as_a_public_client_uses_pkce_alone(server):
    port = free_port()
    response = requests.post(
        server.issuer + "/register", timeout=10,
        json={"client_name": "Public Example", "redirect_uris": [f"http://127.0.0.1:{port}/callback"],
              "token_endpoint_auth_method": "none", "scope": "read:analysis"},
        headers={"Authorization": "Bearer local-registration-token"},
    )
    client = response.json()
    assert "client_secret" not in client
    with example_app(server.issuer, client["client_id"], None, port) as app:
        browser, signed_in = sign_in_and_decide(server.issuer, app, "allow")
        assert 'id="signed-in"' in signed_in.text and "/v1/analyses (200)" in signed_in.text
        assert 'id="refreshed"' in browser.get(app + "/refresh", timeout=10).text
