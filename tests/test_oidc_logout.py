"""OpenID Connect RP-Initiated Logout 1.0 at GET/POST /logout (end_session_endpoint), and registering
post_logout_redirect_uris (RFC 7591 /register, RFC 7592 PUT, Developer Settings)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.authorize_support import ISS, Browser, assert_page, hidden, location
from tests.oidc_support import RP, RP_LOGOUT_URI, code_for, oidc_az, setup_oidc, tokens

pytestmark = pytest.mark.store("memory")


@pytest.fixture
def user(aws):
    return setup_oidc(aws)


@pytest.fixture
def signed_in(http, user):
    """A browser signed in at Clipron, and the RP's ID token for that login."""
    browser = Browser(http)
    body = tokens(http, code_for(browser, oidc_az()))
    return browser, body["id_token"]


def logout_path(**params: str) -> str:
    return "/logout?" + urlencode(params)


def session_alive(aws, browser: Browser) -> bool:
    return aws.sessions.resolve(browser.cookies.get("clipron_session")) is not None


def test_id_token_hint_signs_out_and_redirects_with_state(http, aws, signed_in):
    browser, id_token = signed_in
    session_id = browser.cookies["clipron_session"]
    response = browser.get(logout_path(id_token_hint=id_token, post_logout_redirect_uri=RP_LOGOUT_URI, state="xyz"))
    assert response.status_code == 302
    assert location(response) == RP_LOGOUT_URI + "?state=xyz"
    assert aws.sessions.resolve(session_id) is None and "clipron_session" not in browser.cookies


def test_id_token_hint_alone_signs_out_to_the_signed_out_page(http, aws, signed_in):
    browser, id_token = signed_in
    session_id = browser.cookies["clipron_session"]
    response = browser.get(logout_path(id_token_hint=id_token))
    assert response.status_code == 200 and "You are signed out" in response.body.decode()
    assert aws.sessions.resolve(session_id) is None


def test_an_expired_id_token_hint_still_works(http, aws, signed_in, monkeypatch):
    from chalicelib import clock
    from tests.token_helpers import freeze_clock

    browser, id_token = signed_in
    freeze_clock(monkeypatch)
    clock.travel(900)
    response = browser.get(logout_path(id_token_hint=id_token, post_logout_redirect_uri=RP_LOGOUT_URI))
    assert location(response) == RP_LOGOUT_URI and not session_alive(aws, browser)


def test_without_id_token_hint_the_user_confirms_first(http, aws, signed_in):
    """A cross-site link never signs anyone out silently: a CSRF-protected confirmation comes first."""
    browser, _ = signed_in
    page = browser.get(logout_path(client_id=RP, post_logout_redirect_uri=RP_LOGOUT_URI, state="s1"),
                       headers={"Sec-Fetch-Site": "cross-site"})
    assert page.status_code == 200 and "Sign out of Clipron?" in page.body.decode()
    assert session_alive(aws, browser)
    assert "rp.example" in page.headers["Content-Security-Policy"]  # form-action allows the redirect
    form = {"csrf_token": hidden(page, "csrf_token"), "client_id": hidden(page, "client_id"),
            "post_logout_redirect_uri": hidden(page, "post_logout_redirect_uri"), "state": hidden(page, "state")}
    forged = browser.post("/logout", {**form, "csrf_token": "forged"})
    assert forged.status_code == 403 and session_alive(aws, browser)
    cross_site = browser.post("/logout", form, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403 and session_alive(aws, browser)
    response = browser.post("/logout", form)
    assert response.status_code == 303 and location(response) == RP_LOGOUT_URI + "?state=s1"
    assert not session_alive(aws, browser)


def test_the_confirmation_form_rechecks_the_redirect(http, aws, signed_in):
    browser, _ = signed_in
    page = browser.get(logout_path(client_id=RP, post_logout_redirect_uri=RP_LOGOUT_URI))
    form = {"csrf_token": hidden(page, "csrf_token"), "client_id": RP,
            "post_logout_redirect_uri": "https://evil.example/"}
    assert_page(browser.post("/logout", form))
    assert session_alive(aws, browser)


def test_a_hint_for_another_user_asks_for_confirmation(http, aws, signed_in, user):
    from chalicelib import clock
    from chalicelib.oauth import accounts
    from tests.authorize_support import PASSWORD, sign_in

    browser, id_token = signed_in
    accounts.create_user(aws.store, "grace@example.com", PASSWORD, clock.now())
    other = Browser(http)
    sign_in(other, "grace@example.com", PASSWORD)
    page = other.get(logout_path(id_token_hint=id_token))
    assert page.status_code == 200 and "Sign out of Clipron?" in page.body.decode()
    assert session_alive(aws, other)


@pytest.mark.parametrize("params", [
    {"post_logout_redirect_uri": "https://evil.example/"},  # no client named
    {"client_id": RP, "post_logout_redirect_uri": "https://evil.example/"},
    {"client_id": RP, "post_logout_redirect_uri": RP_LOGOUT_URI + "?x=1"},  # exact match only
    {"client_id": "nobody", "post_logout_redirect_uri": RP_LOGOUT_URI},
    {"id_token_hint": "not.a.token"},
])
def test_bad_requests_get_an_error_page_and_no_redirect(http, aws, signed_in, params):
    browser, _ = signed_in
    response = browser.get(logout_path(**params))
    assert_page(response)
    assert "evil.example" not in response.body.decode()
    assert session_alive(aws, browser)


def test_a_modified_id_token_hint_is_refused(http, aws, signed_in):
    browser, id_token = signed_in
    head, payload, signature = id_token.split(".")
    forged = ".".join([head, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")])
    assert_page(browser.get(logout_path(id_token_hint=forged, post_logout_redirect_uri=RP_LOGOUT_URI)))
    assert session_alive(aws, browser)


def test_client_id_must_match_the_hint(http, aws, signed_in):
    browser, id_token = signed_in
    assert_page(browser.get(logout_path(id_token_hint=id_token, client_id="rpp")))


def test_without_a_session_a_valid_request_just_redirects(http, user):
    response = Browser(http).get(logout_path(client_id=RP, post_logout_redirect_uri=RP_LOGOUT_URI, state="s"))
    assert response.status_code == 302 and location(response) == RP_LOGOUT_URI + "?state=s"


def test_an_rp_logout_sent_by_post_continues_as_a_get(http, aws, signed_in):
    browser, id_token = signed_in
    response = browser.post("/logout", {"id_token_hint": id_token, "post_logout_redirect_uri": RP_LOGOUT_URI,
                                        "state": "p", "unrelated": "dropped"})
    assert response.status_code == 303 and location(response).startswith(ISS + "/logout?")
    assert "unrelated" not in location(response)
    final = browser.follow(response)
    assert location(final) == RP_LOGOUT_URI + "?state=p" and not session_alive(aws, browser)


# --- registering post_logout_redirect_uris ---------------------------------------------------------


def _register(http, metadata: dict) -> dict:
    from tests.test_oidc_id_token import _registration_token

    response = http.post("/register", headers={"Content-Type": "application/json",
                                                "Authorization": "Bearer " + _registration_token(http)},
                         body=json.dumps(metadata))
    assert response.status_code in (201, 400), response.body
    return json.loads(response.body)


def test_post_logout_redirect_uris_by_register_and_rfc7592_update(http, aws):
    meta = {"client_name": "RP2", "redirect_uris": ["https://rp2.example/cb"],
            "post_logout_redirect_uris": ["https://rp2.example/bye"]}
    registered = _register(http, meta)
    assert registered["post_logout_redirect_uris"] == ["https://rp2.example/bye"]
    client_id = registered["client_id"]
    headers = {"Content-Type": "application/json", "Authorization": "Bearer " + registered["registration_access_token"]}
    update = {**meta, "client_id": client_id, "post_logout_redirect_uris": ["https://rp2.example/later"]}
    updated = http.put(f"/register/{client_id}", headers=headers, body=json.dumps(update))
    assert updated.status_code == 200, updated.body
    assert json.loads(updated.body)["post_logout_redirect_uris"] == ["https://rp2.example/later"]
    assert aws.clients.get(client_id).post_logout_redirect_uris == ["https://rp2.example/later"]


@pytest.mark.parametrize("uris", [["http://evil.example/bye"], ["https://a.example/#frag"], "https://x.example/"])
def test_bad_post_logout_redirect_uris_are_refused_at_registration(http, aws, uris):
    body = _register(http, {"client_name": "RP3", "redirect_uris": ["https://rp3.example/cb"],
                            "post_logout_redirect_uris": uris})
    assert body["error"] in ("invalid_redirect_uri", "invalid_client_metadata")


def test_post_logout_redirect_uris_in_developer_settings(http, aws):
    from tests.developer_support import created_credentials
    from tests.developer_support import sign_in as developer

    dev = developer(aws, http)
    fields = {"name": "Signs in", "app_type": "web", "redirect_uris": "https://d.example/cb",
              "post_logout_redirect_uris": "https://d.example/bye", "scope.openid": "on", "scope.profile": "on"}
    client_id, _ = created_credentials(dev.follow(dev.submit("/developer/apps/new", "/developer/apps", fields)))
    client = aws.clients.get(client_id)
    assert client.post_logout_redirect_uris == ["https://d.example/bye"] and client.scopes == ["openid", "profile"]
    page = f"/developer/apps/{client_id}"
    assert "https://d.example/bye" in dev.get(page).body.decode()
    edit = {"name": "Signs in", "redirect_uris": "https://d.example/cb", "scope.openid": "on",
            "post_logout_redirect_uris": "https://d.example/later\nhttp://127.0.0.1:9/bye"}
    assert dev.submit(page, page, edit).status_code == 303
    assert aws.clients.get(client_id).post_logout_redirect_uris == ["https://d.example/later", "http://127.0.0.1:9/bye"]
    bad = dev.submit(page, page, {**edit, "post_logout_redirect_uris": "http://evil.example/bye"})
    assert bad.status_code == 400 and aws.clients.get(client_id).post_logout_redirect_uris[0] == "https://d.example/later"
