"""Browser: sign in, create an app in Developer Settings, use it through the code flow, revoke it in Connected apps;
every page on the way also fits a 375 px phone.

Headless Debian Chromium driven by Playwright against the local run (`python -m chalicelib.local`
on free ports). The third-party side is the requests-oauthlib example app.
"""

from __future__ import annotations

import pytest

from tests.developer_support import DEMO_EMAIL, DEMO_PASSWORD, example_app, free_port

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
# an app may call itself anything of up to 100 characters, one long word included
APP_NAME = "Browser Test App Supercalifragilisticexpialidociousandevenlongerapplicationname"
# what sticks out of a 375 px page: wider than the viewport, clipped, or hidden behind a sideways scroll
OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth, found = [];
  const name = el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + (el.innerText || '').slice(0, 30);
  for (const el of document.body.querySelectorAll('*')) {
    const box = el.getBoundingClientRect(), style = getComputedStyle(el);
    if (!box.width && !box.height) continue;
    if (box.right > width + 0.5 || box.left < -0.5) found.push('outside the page: ' + name(el));
    const clips = ['hidden', 'clip', 'auto', 'scroll'].includes(style.overflowX);
    if (clips && !['INPUT', 'TEXTAREA'].includes(el.tagName) && el.scrollWidth > el.clientWidth + 1)
      found.push('cut off or scrolled sideways: ' + name(el));
  }
  return {scrollWidth: document.scrollingElement.scrollWidth, overflowing: found};
}"""


@pytest.fixture
def server(shared_local_run):
    return shared_local_run


@pytest.fixture
def page(browser_page):
    return browser_page


def fits_a_phone(page, url: str | None = None) -> None:
    """The page (at `url`, else the current one, not reloaded) at 375 px: no sideways scroll, nothing cut off."""
    page.set_viewport_size(PHONE)
    try:
        if url is not None:
            page.goto(url)
        layout = page.evaluate(OVERFLOWING)
        assert layout == {"scrollWidth": layout["scrollWidth"], "overflowing": []}, page.url
        assert layout["scrollWidth"] <= PHONE["width"], (page.url, layout)
    finally:
        page.set_viewport_size(DESKTOP)


def test_developer_creates_uses_and_revokes_an_app(server, page):
    issuer = server.issuer
    example_port = free_port()
    page.set_viewport_size(DESKTOP)
    fits_a_phone(page, issuer + "/")  # the landing page, signed out
    fits_a_phone(page, issuer + "/no/such/page")  # our 404 page
    fits_a_phone(page, issuer + "/authorize?client_id=nope&response_type=code")  # the error page

    # sign in (no pending authorization: a plain sign-in)
    page.goto(issuer + "/developer/apps")
    assert page.url.startswith(issuer + "/login")
    fits_a_phone(page)
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    fits_a_phone(page, issuer + "/")  # signed in
    fits_a_phone(page, issuer + "/developer/apps")  # no app yet

    # Developer Settings: create a web application with the keyboard-reachable, labelled form
    page.goto(issuer + "/developer/apps")
    page.get_by_role("link", name="New application").click()
    fits_a_phone(page)
    page.get_by_label("Application name").fill(APP_NAME)
    page.get_by_label("Web application", exact=False).check()
    page.get_by_label("Redirect URIs", exact=False).fill(f"http://127.0.0.1:{example_port}/callback")
    page.get_by_label("read:analysis", exact=False).check()
    page.get_by_role("button", name="Create application").click()
    page.wait_for_selector("#client-secret")
    fits_a_phone(page)  # the secret, shown once
    client_id = page.locator("#client-id").inner_text().strip()
    client_secret = page.locator("#client-secret").inner_text().strip()
    assert client_id.startswith("app_") and len(client_secret) >= 43

    # Post/Redirect/Get: reloading the page that showed the secret creates nothing and shows it no more
    page.reload()
    assert page.url == f"{issuer}/developer/apps/{client_id}" and client_secret not in page.content()

    # a 375 px phone: the apps list fits without scrolling the page or the table sideways
    fits_a_phone(page, issuer + "/developer/apps")
    assert page.locator("table.apps tbody tr", has_text="Browser Test App").count() == 1  # created once

    # the secret is never shown again
    page.goto(f"{issuer}/developer/apps/{client_id}")
    assert client_secret not in page.content()
    assert client_id in page.locator("#client-id").inner_text()
    fits_a_phone(page)  # the app page, with its rotation and deletion confirmations

    with example_app(issuer, client_id, client_secret, example_port) as app:
        # the third-party app sends the (signed-in) user to consent, then exchanges the code
        page.goto(app + "/login")
        page.wait_for_url(issuer + "/consent?*")
        assert "Browser Test App" in page.locator("h1").inner_text()
        fits_a_phone(page)
        page.get_by_role("button", name="Allow").click()
        page.wait_for_selector("#signed-in")
        assert client_id in page.locator("#me").inner_text()
        page.goto(app + "/refresh")
        page.wait_for_selector("#refreshed")

        # Connected apps: revoke it
        page.goto(issuer + "/account/apps")
        assert "Browser Test App" in page.content()
        fits_a_phone(page)
        page.get_by_role("button", name="Revoke access for Browser Test App").click()
        page.wait_for_selector("text=Access revoked.")
        assert "Browser Test App" not in page.locator("main").inner_text()

        # the app's refresh token stops working
        page.goto(app + "/refresh")
        error = page.locator("#error").inner_text()
        assert "invalid_grant" in error

    # rotating the secret: confirmed on the app page, the new secret shown once
    page.goto(f"{issuer}/developer/apps/{client_id}")
    page.locator("#confirm-rotate").check()
    page.get_by_role("button", name="Rotate secret").click()
    page.wait_for_selector("#client-secret")
    assert page.locator("#client-secret").inner_text().strip() != client_secret
    fits_a_phone(page)

    # signing out asks first (RP-initiated logout names the app)
    fits_a_phone(page, f"{issuer}/logout?client_id={client_id}")
    assert page.get_by_role("button", name="Sign out").count() >= 1
