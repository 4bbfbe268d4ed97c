"""Browser: sign in, create an app in Developer Settings, use it through the code flow, revoke it in Connected apps.

Headless Debian Chromium driven by Playwright against the local run (`python -m chalicelib.local`
on free ports). The third-party side is the requests-oauthlib example app.
"""

from __future__ import annotations

import os

import pytest

from tests.developer_support import DEMO_EMAIL, DEMO_PASSWORD, example_app, free_port

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
def server(shared_local_run):
    return shared_local_run


@pytest.fixture
def page():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) "
                    "to run the browser tests", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context()
            context.set_default_timeout(15000)
            yield context.new_page()
        finally:
            browser.close()


def test_developer_creates_uses_and_revokes_an_app(server, page):
    issuer = server.issuer
    example_port = free_port()

    # sign in (no pending authorization: a plain sign-in)
    page.goto(issuer + "/developer/apps")
    assert page.url.startswith(issuer + "/login")
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()

    # Developer Settings: create a web application with the keyboard-reachable, labelled form
    page.goto(issuer + "/developer/apps")
    page.get_by_role("link", name="New application").click()
    page.get_by_label("Application name").fill("Browser Test App")
    page.get_by_label("Web application", exact=False).check()
    page.get_by_label("Redirect URIs", exact=False).fill(f"http://127.0.0.1:{example_port}/callback")
    page.get_by_label("read:analysis", exact=False).check()
    page.get_by_role("button", name="Create application").click()
    page.wait_for_selector("#client-secret")
    client_id = page.locator("#client-id").inner_text().strip()
    client_secret = page.locator("#client-secret").inner_text().strip()
    assert client_id.startswith("app_") and len(client_secret) >= 43

    # Post/Redirect/Get: reloading the page that showed the secret creates nothing and shows it no more
    page.reload()
    assert page.url == f"{issuer}/developer/apps/{client_id}" and client_secret not in page.content()

    # a 375 px phone: the apps list fits without scrolling the page sideways
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(issuer + "/developer/apps")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.locator("table.apps tbody tr", has_text="Browser Test App").count() == 1  # created once
    page.set_viewport_size({"width": 1280, "height": 800})

    # the secret is never shown again
    page.goto(f"{issuer}/developer/apps/{client_id}")
    assert client_secret not in page.content()
    assert client_id in page.locator("#client-id").inner_text()

    with example_app(issuer, client_id, client_secret, example_port) as app:
        # the third-party app sends the (signed-in) user to consent, then exchanges the code
        page.goto(app + "/login")
        page.wait_for_url(issuer + "/consent?*")
        assert "Browser Test App" in page.locator("h1").inner_text()
        page.get_by_role("button", name="Allow").click()
        page.wait_for_selector("#signed-in")
        assert client_id in page.locator("#me").inner_text()
        page.goto(app + "/refresh")
        page.wait_for_selector("#refreshed")

        # Connected apps: revoke it
        page.goto(issuer + "/account/apps")
        assert "Browser Test App" in page.content()
        page.get_by_role("button", name="Revoke access for Browser Test App").click()
        page.wait_for_selector("text=Access revoked.")
        assert "Browser Test App" not in page.locator("main").inner_text()

        # the app's refresh token stops working
        page.goto(app + "/refresh")
        error = page.locator("#error").inner_text()
        assert "invalid_grant" in error
