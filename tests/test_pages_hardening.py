"""Issue 11, "Redirects, reflection and the pages": untrusted redirects (RFC 9700 §4.11.2), fixed error
descriptions, cookies read pair by pair (RFC 6265 §5.4), application names, the consent policy for
public clients (RFC 6749 §10.2, RFC 8252 §8.6), deeply nested JSON and lone surrogates."""

from __future__ import annotations

import json

import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from chalicelib.records import ClientRecord, RegistrationTokenRecord
from tests.authorize_support import (
    EMAIL,
    PASSWORD,
    Browser,
    add_client,
    add_fixture_clients,
    add_user,
    assert_redirect_error,
    az,
    consent_page,
    decide,
    hidden,
    location,
    response_params,
    signed_in_browser,
)
from tests.developer_support import issue_grant
from tests.lifecycle_helpers import make_client, mint

pytestmark = pytest.mark.store("memory")

TOKEN = "initial-access-token-for-tests"
JSON = {"Content-Type": "application/json"}
ATTACKER = "https://attacker.example/cb"
MARK = "zq7marker"  # attacker-chosen text that must never come back in an error


@pytest.fixture
def reg(aws, http):
    now = clock.now()
    aws.store.put_registration_token(RegistrationTokenRecord(digest(TOKEN), now, now + 3600, "tests"))
    return http


def register(http, metadata, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(metadata).encode()
    return http.post("/register", headers={**JSON, "Authorization": f"Bearer {TOKEN}"}, body=body)


def registered_app(http, name: str = "Shiny App", uris: list[str] | None = None, public: bool = False) -> dict:
    metadata = {"client_name": name, "redirect_uris": uris or [ATTACKER]}
    if public:
        metadata["token_endpoint_auth_method"] = "none"
    response = register(http, metadata)
    assert response.status_code == 201, response.body
    return json.loads(response.body)


@pytest.fixture
def user(aws):
    return add_user(aws.store)


def assert_not_redirected_to(response, target: str) -> str:
    """Our page, no Location: the user may follow the link, nothing goes to the app by itself."""
    assert "Location" not in response.headers, response.headers.get("Location")
    assert response.headers["Content-Type"].startswith("text/html")
    html = response.body.decode()
    assert "not\n    verified by Clipron" in html or "not verified by Clipron" in html
    assert target in html
    return html


# --- RFC 9700 §4.11.2: no open redirector through a self-registered app ---------------------------


def test_errors_for_a_self_registered_app_are_not_redirected_before_sign_in(reg):
    app = registered_app(reg)
    for request in (
        f"/authorize?client_id={app['client_id']}&response_type=token",  # the review's open redirector
        f"/authorize?client_id={app['client_id']}&response_type=code&scope=nope",
        f"/authorize?client_id={app['client_id']}&response_type=code&prompt=none&code_challenge=x",
    ):
        response = reg.get(request)
        assert response.status_code == 400
        html = assert_not_redirected_to(response, "https://attacker.example")
        assert 'href="https://attacker.example/cb?error=' in html  # the user may go there, by choice


def test_errors_for_a_self_registered_app_the_user_approved_are_redirected(aws, reg, user):
    app = registered_app(reg)
    browser = signed_in_browser(reg)
    response = browser.get(f"/authorize?client_id={app['client_id']}&response_type=token&state=s")
    assert response.status_code == 400 and "Location" not in response.headers  # signed in, never approved
    aws.store.save_consent_scopes(user.user_id, app["client_id"], ["read:analysis"], clock.now())
    response = browser.get(f"/authorize?client_id={app['client_id']}&response_type=token&state=s")
    assert_redirect_error(response, "unsupported_response_type", state="s", uri=ATTACKER)


def test_errors_for_verified_clients_are_still_redirected(aws, http):
    add_fixture_clients(aws.store)
    assert_redirect_error(http.get(az(response_type="token")), "unsupported_response_type")


def test_denying_a_self_registered_app_shows_our_page(reg, user):
    app = registered_app(reg, public=True)
    browser = signed_in_browser(reg)
    request = az(client_id=app["client_id"], redirect_uri=ATTACKER)
    page = consent_page(browser, request)
    response = decide(browser, page, "deny")
    assert response.status_code == 200
    html = assert_not_redirected_to(response, "https://attacker.example")
    assert "error=access_denied" in html


# --- fixed error descriptions ----------------------------------------------------------------------


def test_authorize_errors_never_echo_the_request(aws, http):
    add_fixture_clients(aws.store)
    for request in (az(scope=f"read:analysis {MARK}"), az(extra=[(MARK, "1"), (MARK, "2")])):
        response = http.get(request)
        assert response.status_code == 302
        assert MARK not in location(response), location(response)
        assert response_params(response)["error"] in ("invalid_scope", "invalid_request")


def test_json_errors_never_echo_the_request(clients, http):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = http.post("/token", headers=form, body=f"grant_type=refresh_token&{MARK}=1&{MARK}=2".encode())
    assert response.status_code == 400 and MARK not in response.body.decode()
    minted = mint(clients, "c1", scope="read:analysis")
    body = f"grant_type=refresh_token&refresh_token={minted.refresh_token}&scope=read:analysis%20{MARK}"
    response = http.post("/token", headers={**form, "Authorization": "Basic YzE6c2VjcmV0"}, body=body.encode())
    assert response.status_code in (400, 401) and MARK not in response.body.decode()
    project = mint(clients, "c1", scope="write:project")
    response = http.post("/v1/projects", headers={**JSON, "Authorization": f"Bearer {project.access_token}"},
                         body=json.dumps({"name": "ok", MARK: 1}).encode())
    assert response.status_code == 400 and MARK not in response.body.decode()


@pytest.fixture
def clients(aws):
    make_client(aws, "c1")
    return aws


@pytest.mark.parametrize("metadata", [
    {"client_name": "A", "redirect_uris": [f"http://{MARK}.example/cb"]},
    {"client_name": "A", "redirect_uris": [f"https://{MARK}.example/cb#x"]},
    {"client_name": "A", "redirect_uris": ["https://a.example/cb"], "grant_types": [MARK]},
    {"client_name": "A", "redirect_uris": ["https://a.example/cb"], "scope": MARK},
])
def test_registration_errors_never_echo_the_metadata(reg, metadata):
    response = register(reg, metadata)
    assert response.status_code == 400
    assert MARK not in response.body.decode()


# --- cookies, pair by pair -------------------------------------------------------------------------


def test_an_unparseable_cookie_on_the_domain_does_not_hide_ours(aws, http, user):
    browser = Browser(http)
    browser.cookies["prefs"] = '{"theme":"dark"}'
    browser.cookies["x"] = "1"  # the broken cookie sits between ours and another
    form_page = browser.get("/login")
    browser.cookies = {"prefs": '{"theme":"dark"}', **browser.cookies}  # and first in the header
    form = {"csrf_token": hidden(form_page, "csrf_token"), "email": EMAIL, "password": PASSWORD}
    response = browser.post("/login", form)
    assert response.status_code == 200, response.body[:300]
    assert "You are signed in" in response.body.decode()


# --- application names and the consent page ----------------------------------------------------------


@pytest.mark.parametrize("name", [
    "\u202egnp.exe", "Pay\u200bPal", "Tab\tName", "Line\nBreak", "Nul\x00", "Bidi \u2066isolate\u2069",
    "\u200fRTL mark", "Soft\u00adhyphen", "Clipron", "Clipron Sign-in", "CLIPRON", "C1ipr0n", "c l i p r o n",
    "Cl\u0456pron", "Clípron", "Z\u0301\u0302\u0303\u0304algo", "No\u00a0break",
])
def test_self_registered_names_that_hide_text_or_imitate_clipron_are_refused(reg, name):
    response = register(reg, {"client_name": name, "redirect_uris": ["https://a.example/cb"]})
    assert response.status_code == 400, name
    assert json.loads(response.body)["error"] == "invalid_client_metadata"


def test_plain_names_in_any_script_are_accepted(reg):
    for name in ("Café Analytics", "数据分析", "Αναλύσεις", "My App (beta) – v2"):
        assert register(reg, {"client_name": name, "redirect_uris": ["https://a.example/cb"]}).status_code == 201


def test_consent_page_marks_self_registered_apps_and_shows_the_redirect_scheme(reg, user):
    evil = "com.evil.app://auth.clipron.example/cb"
    app = registered_app(reg, name="Evil", uris=[evil], public=True)
    browser = signed_in_browser(reg)
    html = consent_page(browser, az(client_id=app["client_id"], redirect_uri=evil)).body.decode()
    assert 'id="unverified"' in html
    assert '<strong id="redirect-target">com.evil.app://auth.clipron.example</strong>' in html


def test_consent_page_of_a_verified_client_carries_no_warning(aws, http, user):
    add_fixture_clients(aws.store)
    html = consent_page(signed_in_browser(http), az()).body.decode()
    assert 'id="unverified"' not in html
    assert '<strong id="redirect-target">https://c1.example</strong>' in html


def test_pages_neutralise_names_stored_before_the_rules(aws, http, user):
    """A name stored earlier with a bidi override or a lone surrogate: pages render, nothing reorders."""
    add_client(aws.store, "old1", ["https://old1.example/cb"], name="\u202eevil\ud800name", verified=False)
    browser = signed_in_browser(http)
    page = consent_page(browser, az(client_id="old1", redirect_uri="https://old1.example/cb"))
    html = page.body.decode()
    assert "\u202e" not in html and "\ud800" not in html and "\ufffdevil\ufffdname" in html
    issue_grant(aws, "old1", user.user_id)
    apps = browser.get("/account/apps")
    assert apps.status_code == 200 and "Revoke access" in apps.body.decode()


# --- consent policy for public clients (RFC 6749 §10.2, RFC 8252 §8.6) ----------------------------


def test_loopback_public_clients_are_asked_every_time(aws, http, user):
    add_fixture_clients(aws.store)
    aws.store.save_consent_scopes(user.user_id, "n1", ["read:analysis"], clock.now())
    browser = signed_in_browser(http)
    request = az(client_id="n1", redirect_uri="http://127.0.0.1:5000/cb")
    response = browser.get(request)
    assert response.status_code == 302 and "/consent?request=" in location(response)  # no silent code
    silent = browser.get(request + "&prompt=none")
    assert_redirect_error(silent, "consent_required", uri="http://127.0.0.1:5000/cb")


def test_confidential_and_https_public_clients_keep_remembered_consent(aws, http, user):
    add_fixture_clients(aws.store)
    for client_id in ("c1", "p1"):
        aws.store.save_consent_scopes(user.user_id, client_id, ["read:analysis"], clock.now())
    browser = signed_in_browser(http)
    assert "code" in response_params(browser.get(az()))
    assert "code" in response_params(browser.get(az(client_id="p1", redirect_uri="https://p1.example/cb")))


# --- deeply nested JSON and lone surrogates ------------------------------------------------------------

NESTED = b"[" * 1500 + b"]" * 1500
NESTED_OBJECT = b'{"client_name":' + b'{"a":' * 1500 + b"1" + b"}" * 1501


def test_deeply_nested_json_is_a_400_everywhere(clients, reg):
    app = registered_app(reg)
    management = {"Authorization": f"Bearer {app['registration_access_token']}", **JSON}
    project = mint(clients, "c1", scope="write:project")
    for body in (NESTED, NESTED_OBJECT):
        assert register(reg, None, raw=body).status_code == 400
        response = reg.put(f"/register/{app['client_id']}", headers=management, body=body)
        assert response.status_code == 400, response.body
        response = reg.post("/v1/projects", headers={**JSON, "Authorization": f"Bearer {project.access_token}"},
                            body=body)
        assert response.status_code == 400, response.body
        assert json.loads(response.body)["error"] == "invalid_request"


LONE = '"Bad \\ud800 name"'  # a JSON escape that decodes to a lone surrogate


def test_lone_surrogates_are_refused_wherever_input_is_stored(aws, clients, reg):
    raw = ('{"client_name": ' + LONE + ', "redirect_uris": ["https://a.example/cb"]}').encode()
    response = register(reg, None, raw=raw)
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_client_metadata"
    app = registered_app(reg)
    raw = ('{"client_id": "' + app["client_id"] + '", "client_name": ' + LONE
           + ', "redirect_uris": ["https://a.example/cb"], "client_secret": "' + app["client_secret"] + '"}').encode()
    management = {"Authorization": f"Bearer {app['registration_access_token']}", **JSON}
    assert reg.put(f"/register/{app['client_id']}", headers=management, body=raw).status_code == 400
    assert aws.store.get_client(app["client_id"]).name == "Shiny App"
    project = mint(clients, "c1", scope="write:project")
    response = reg.post("/v1/projects", headers={**JSON, "Authorization": f"Bearer {project.access_token}"},
                        body=b'{"name": ' + LONE.encode() + b"}")
    assert response.status_code == 400
    response = reg.post("/v1/projects", headers={**JSON, "Authorization": f"Bearer {project.access_token}"},
                        body=b'{"name": "ok", "\\udc00": 1}')
    assert response.status_code == 400


def test_client_record_defaults_to_not_verified():
    assert ClientRecord("x", "X", [], [], [], "none").verified is False


def test_query_parameters_that_are_not_valid_text_are_refused():
    """The Lambda event is JSON: `"\\udc80"` in it becomes a lone surrogate in the query string."""
    from types import SimpleNamespace

    from chalice.app import MultiDict

    from chalicelib.oauth.errors import InvalidRequest
    from chalicelib.web.common import query_pairs

    good = SimpleNamespace(query_params=MultiDict({"state": ["caf\u00e9"]}))
    assert query_pairs(good) == [("state", "caf\u00e9")]
    for params in ({"state": ["bad\udc80"]}, {"bad\ud800": ["x"]}):
        with pytest.raises(InvalidRequest):
            query_pairs(SimpleNamespace(query_params=MultiDict(params)))


def test_connected_apps_marks_apps_clipron_has_not_verified(aws, http, user):
    add_client(aws.store, "ops", ["https://ops.example/cb"], name="Operator App")
    add_client(aws.store, "selfmade", ["https://self.example/cb"], name="Self Made", verified=False)
    issue_grant(aws, "ops", user.user_id)
    issue_grant(aws, "selfmade", user.user_id)
    html = signed_in_browser(http).get("/account/apps").body.decode()
    sections = html.split("<section")[1:]
    marked = {("Self Made" in s, "not verified by Clipron" in s) for s in sections}
    assert marked == {(True, True), (False, False)}
