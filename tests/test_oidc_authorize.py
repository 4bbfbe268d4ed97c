"""OpenID Connect authentication requests (Core §3.1.2.1, §6): prompt, max_age, login_hint, id_token_hint,
ignored parameters, request objects, authorization by POST.

Conformance Basic OP modules: oidcc-response-type-missing, oidcc-prompt-login, oidcc-prompt-none-logged-in,
oidcc-prompt-none-not-logged-in, oidcc-max-age-1, oidcc-max-age-10000, oidcc-id-token-hint,
oidcc-login-hint, oidcc-ui-locales, oidcc-claims-locales, oidcc-acr-values, oidcc-display-page,
oidcc-display-popup, oidcc-ensure-request-with-unknown-parameter-succeeds, oidcc-ensure-registered-redirect-uri,
oidcc-ensure-post-request-succeeds, oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported,
oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from chalicelib import clock
from tests.authorize_support import (
    ISS,
    Browser,
    assert_page,
    assert_redirect_error,
    location,
    request_id_of,
    response_params,
)
from tests.oidc_support import RP_URI, code_for, complete, id_token_claims, oidc_az, setup_oidc, tokens
from tests.token_helpers import freeze_clock

pytestmark = pytest.mark.store("memory")

UNSIGNED_REQUEST_OBJECT = "eyJhbGciOiJub25lIn0.eyJyZXNwb25zZV90eXBlIjoiY29kZSJ9."


@pytest.fixture
def user(aws):
    return setup_oidc(aws)


@pytest.fixture
def frozen(monkeypatch):
    freeze_clock(monkeypatch)


@pytest.fixture
def first(http, user, frozen):
    """A browser that signed in and approved the RP once, with that first ID token's claims and the token."""
    browser = Browser(http)
    body = tokens(http, code_for(browser, oidc_az()))
    return browser, id_token_claims(http, body["id_token"]), body["id_token"]


def query(path: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(path).query))


def goes_to_login(response) -> bool:
    return response.status_code in (302, 303) and location(response).startswith(ISS + "/login?request=")


def second_login(browser: Browser, path: str) -> dict:
    """Another authorization that must show the login page, completed; the new ID token's claims."""
    response = browser.get(path)
    assert goes_to_login(response), response.headers.get("Location")
    params = complete(browser, response)
    return id_token_claims(browser.http, tokens(browser.http, params["code"])["id_token"])


def test_missing_response_type_is_invalid_request_at_the_redirect(http, user):
    assert_redirect_error(Browser(http).get(oidc_az("response_type")), "invalid_request", uri=RP_URI)


def test_an_unregistered_redirect_uri_is_an_error_page_never_a_redirect(http, user):
    assert_page(Browser(http).get(oidc_az(redirect_uri="https://evil.example/cb")))


def test_prompt_none_without_a_session_is_login_required(http, user):
    assert_redirect_error(Browser(http).get(oidc_az(prompt="none")), "login_required", uri=RP_URI)


def test_prompt_none_with_a_session_and_consent_issues_a_code_silently(http, first):
    browser, claims, _ = first
    response = browser.get(oidc_az(prompt="none", nonce="second"))
    params = response_params(response)
    assert location(response).startswith(RP_URI) and params["state"] == "S1" and params["iss"] == ISS
    again = id_token_claims(http, tokens(http, params["code"])["id_token"])
    assert again["sub"] == claims["sub"] and again["auth_time"] == claims["auth_time"] and again["nonce"] == "second"


def test_prompt_none_without_consent_is_consent_required(http, first):
    browser, _, _ = first
    response = browser.get(oidc_az(prompt="none", scope="openid read:analysis"))
    assert_redirect_error(response, "consent_required", uri=RP_URI)


def test_prompt_none_combined_with_another_prompt_is_invalid_request(http, first):
    browser, _, _ = first
    assert_redirect_error(browser.get(oidc_az(prompt="none login")), "invalid_request", uri=RP_URI)


@pytest.mark.parametrize("prompt", ["login", "select_account", "login consent"])
def test_prompt_login_forces_a_new_login_with_a_later_auth_time(http, first, prompt):
    browser, claims, _ = first
    clock.travel(2)
    again = second_login(browser, oidc_az(prompt=prompt))
    assert again["sub"] == claims["sub"] and again["auth_time"] > claims["auth_time"]


def test_prompt_consent_asks_again_even_when_remembered(http, first):
    browser, _, _ = first
    response = browser.get(oidc_az(prompt="consent"))
    assert location(response).startswith(ISS + "/consent?request=")


def test_max_age_1_after_two_seconds_forces_a_login(http, first):
    browser, claims, _ = first
    clock.travel(2)
    again = second_login(browser, oidc_az(max_age="1"))
    assert again["auth_time"] > claims["auth_time"] and again["auth_time"] >= clock.now() - 1


def test_max_age_10000_keeps_the_session_and_its_auth_time(http, first):
    browser, claims, _ = first
    clock.travel(2)
    params = response_params(browser.get(oidc_az(max_age="10000")))
    assert id_token_claims(http, tokens(http, params["code"])["id_token"])["auth_time"] == claims["auth_time"]


def test_max_age_0_behaves_as_prompt_login(http, first):
    browser, _, _ = first
    assert goes_to_login(browser.get(oidc_az(max_age="0")))


def test_max_age_with_prompt_none_and_an_old_login_is_login_required(http, first):
    browser, _, _ = first
    clock.travel(5)
    assert_redirect_error(browser.get(oidc_az(max_age="1", prompt="none")), "login_required", uri=RP_URI)


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "99999999999"])
def test_a_malformed_max_age_is_invalid_request(http, user, value):
    assert_redirect_error(Browser(http).get(oidc_az(max_age=value)), "invalid_request", uri=RP_URI)


def test_id_token_hint_with_prompt_none_succeeds_for_the_same_user(http, first):
    browser, claims, id_token = first
    params = response_params(browser.get(oidc_az(prompt="none", id_token_hint=id_token)))
    again = id_token_claims(http, tokens(http, params["code"])["id_token"])
    assert again["sub"] == claims["sub"] and again["auth_time"] == claims["auth_time"]


def test_an_expired_id_token_hint_is_still_accepted(http, first):
    browser, _, id_token = first
    clock.travel(600)  # the ID token lived 300 s; the session 8 h
    assert "code" in response_params(browser.get(oidc_az(prompt="none", id_token_hint=id_token)))


def test_id_token_hint_of_another_user_is_login_required_under_prompt_none(http, first, aws):
    from chalicelib.oauth import accounts
    from tests.authorize_support import PASSWORD

    browser, _, _ = first
    other_user = accounts.create_user(aws.store, "grace@example.com", PASSWORD, clock.now())
    other = Browser(http)
    from tests.authorize_support import sign_in

    start = other.get(oidc_az())
    sign_in(other, "grace@example.com", PASSWORD, request_id_of(location(start)))
    other_params = complete(other, other.get(oidc_az()))
    other_token = tokens(http, other_params["code"])["id_token"]
    assert id_token_claims(http, other_token)["sub"] == other_user.user_id
    assert_redirect_error(browser.get(oidc_az(prompt="none", id_token_hint=other_token)), "login_required",
                          uri=RP_URI)
    assert goes_to_login(browser.get(oidc_az(id_token_hint=other_token)))


@pytest.mark.parametrize("hint", ["garbage", "a.b.c"])
def test_a_forged_id_token_hint_is_invalid_request(http, first, hint):
    browser, _, _ = first
    assert_redirect_error(browser.get(oidc_az(prompt="none", id_token_hint=hint)), "invalid_request", uri=RP_URI)


def test_an_access_token_is_not_an_id_token_hint(http, first):
    browser, _, _ = first
    access_token = tokens(http, code_for(browser, oidc_az()))["access_token"]
    assert_redirect_error(browser.get(oidc_az(id_token_hint=access_token)), "invalid_request", uri=RP_URI)


def test_login_hint_prefills_the_email_field(http, user):
    browser = Browser(http)
    response = browser.get(oidc_az(login_hint="ada@example.com"))
    page = browser.get(location(response).removeprefix(ISS))
    assert 'value="ada@example.com"' in page.body.decode()


def test_a_login_hint_is_escaped_in_the_page(http, user):
    browser = Browser(http)
    page = browser.get(location(browser.get(oidc_az(login_hint='"><script>x</script>'))).removeprefix(ISS))
    assert "<script>x" not in page.body.decode()


@pytest.mark.parametrize("extra", [
    {"display": "page"}, {"display": "popup"}, {"ui_locales": "se"}, {"claims_locales": "se"},
    {"acr_values": "1 2"}, {"extra_param": "foobar"}, {"display": "nonsense"},
])
def test_ignored_and_unknown_parameters_never_fail(http, user, extra):
    browser = Browser(http)
    params = complete(browser, browser.get(oidc_az(**extra)))
    assert "error" not in params and "code" in params, params


@pytest.mark.parametrize("name,error", [("request", "request_not_supported"),
                                        ("request_uri", "request_uri_not_supported")])
def test_request_objects_are_refused_by_name_at_the_redirect(http, user, name, error):
    value = UNSIGNED_REQUEST_OBJECT if name == "request" else "https://rp.example/request.jwt"
    params = assert_redirect_error(Browser(http).get(oidc_az(**{name: value})), error, uri=RP_URI)
    assert value not in params.get("error_description", "")


def test_authorization_by_post_works_like_get(http, user):
    browser = Browser(http)
    form = query(oidc_az())
    response = browser.post("/authorize", form)
    assert response.status_code == 303 and goes_to_login(response)
    params = complete(browser, response)
    claims = id_token_claims(http, tokens(http, params["code"])["id_token"])
    assert claims["nonce"] == form["nonce"]
