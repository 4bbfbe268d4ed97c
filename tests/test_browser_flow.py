"""The whole authorization code flow in headless Chromium against a real local run (`python -m chalicelib.local`).

Login as the demo user, consent, capture the redirect to the demo redirect URI (nothing listens
there: the test reads the URL of the request the browser makes), then exchange the code at POST /token.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest

from chalicelib.local import DEFAULTS, free_port
from tests.authorize_support import CH, V

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
START_TIMEOUT_SECONDS = 90
STATE = "browser state & = + % é"


def _wait_until_serving(process: subprocess.Popen, issuer: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the local run exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(issuer + "/.well-known/oauth-authorization-server", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(f"the local run did not answer within {START_TIMEOUT_SECONDS} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM lets chalicelib.local stop `chalice local` and moto; the session group is killed if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def local_run():
    """The local run on free ports; yields its issuer and stops it afterwards, also on failure."""
    port, moto_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OAUTH_", "API_", "KMS_"))}
    env.update({"PORT": str(port), "MOTO_PORT": str(moto_port), "ISSUER_URL": issuer, "STAGE": "local",
                "PYTHONUNBUFFERED": "1"})
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "local-run.log"
        with log.open("wb") as output:
            process = subprocess.Popen([sys.executable, "-m", "chalicelib.local"], cwd=ROOT, env=env, stdout=output,
                                       stderr=subprocess.STDOUT, start_new_session=True)
            try:
                _wait_until_serving(process, issuer, log)
                yield issuer
            finally:
                _stop(process)


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


def test_login_consent_redirect_and_code_exchange(local_run):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    issuer = local_run
    redirect_uri = DEFAULTS["DEMO_REDIRECT_URI"]
    query = urlencode({"response_type": "code", "client_id": DEFAULTS["DEMO_CLIENT_ID"], "redirect_uri": redirect_uri,
                       "scope": "read:analysis read:project", "state": STATE, "code_challenge": CH,
                       "code_challenge_method": "S256"}, quote_via=quote)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
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
        finally:
            browser.close()

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
