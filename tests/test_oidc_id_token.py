"""OpenID Connect discovery, scopes and ID tokens (Discovery 1.0 §3-4, Core §2, §3.1.3, §12.2).

Conformance Basic OP modules covered here: oidcc-server (happy path), oidcc-idtoken-signature,
oidcc-idtoken-rs256, oidcc-idtoken-unsigned (never issued), oidcc-ensure-request-without-nonce-succeeds-
for-code-flow, oidcc-scope-* (any order, unsupported scopes ignored), oidcc-claims-essential,
oidcc-refresh-token, oidcc-ensure-pkce-*; Config OP: oidcc-discovery-endpoint-verification.
"""

from __future__ import annotations

import base64
import hashlib
import json

import jwt
import pytest

from chalicelib import clock
from tests.authorize_support import ISS, Browser, assert_redirect_error
from tests.oidc_support import (
    NAME,
    RP,
    RP_URI,
    code_for,
    exchange,
    id_token_claims,
    oidc_az,
    refresh,
    setup_oidc,
    tokens,
    userinfo,
)
from tests.token_helpers import aws_calls

pytestmark = pytest.mark.store("memory")


@pytest.fixture
def user(aws):
    return setup_oidc(aws)


@pytest.fixture
def browser(http, user):
    return Browser(http)


# --- discovery ------------------------------------------------------------------------------------


def test_openid_configuration_is_the_rfc8414_document_with_the_openid_fields(http):
    response = http.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    doc = json.loads(response.body)
    assert doc == json.loads(http.get("/.well-known/oauth-authorization-server").body)  # one source, never apart
    assert doc["issuer"] == ISS
    assert doc["userinfo_endpoint"] == ISS + "/userinfo"
    assert doc["end_session_endpoint"] == ISS + "/logout"
    assert doc["jwks_uri"] == ISS + "/.well-known/jwks.json"
    assert doc["subject_types_supported"] == ["public"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"openid", "profile", "email"} <= set(doc["scopes_supported"])
    assert {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "email", "email_verified"} <= set(
        doc["claims_supported"])
    assert doc["response_types_supported"] == ["code"]
    assert "authorization_code" in doc["grant_types_supported"]
    assert doc["prompt_values_supported"] == ["none", "login", "consent", "select_account"]
    assert doc["claims_parameter_supported"] is True
    assert doc["request_parameter_supported"] is False and doc["request_uri_parameter_supported"] is False
    assert "none" not in doc["id_token_signing_alg_values_supported"]


def test_consent_page_describes_the_openid_scopes(http, user):
    browser = Browser(http)
    start = browser.get(oidc_az())
    from tests.authorize_support import request_id_of, sign_in

    page = browser.follow(sign_in(browser, request_id=request_id_of(start.headers["Location"])))
    body = page.body.decode()
    assert "Sign you in with your Clipron account" in body
    assert "See your name" in body and "See your email address" in body


def test_registration_without_scope_may_ask_for_openid(http):
    registered = http.post("/register", headers={"Content-Type": "application/json",
                                                  "Authorization": "Bearer " + _registration_token(http)},
                           body=json.dumps({"client_name": "RP", "redirect_uris": ["https://x.example/cb"],
                                            "post_logout_redirect_uris": ["https://x.example/bye"]}))
    assert registered.status_code == 201, registered.body
    body = json.loads(registered.body)
    assert {"openid", "profile", "email"} <= set(body["scope"].split())
    assert body["post_logout_redirect_uris"] == ["https://x.example/bye"]


def _registration_token(http) -> str:
    from chalicelib.crypto.secrets import digest, new_token
    from chalicelib.records import RegistrationTokenRecord
    from chalicelib.wiring import services

    token = new_token()
    now = clock.now()
    services().store.put_registration_token(RegistrationTokenRecord(digest(token), now, now + 60))
    return token


# --- the ID token ---------------------------------------------------------------------------------


def test_code_exchange_with_openid_returns_a_valid_id_token(http, browser, user, aws):
    body = tokens(http, code_for(browser, oidc_az()))
    claims = id_token_claims(http, body["id_token"])
    header = jwt.get_unverified_header(body["id_token"])
    keys = json.loads(http.get("/.well-known/jwks.json").body)["keys"]
    assert header["kid"] == keys[0]["kid"] and header["alg"] == "RS256"
    assert claims["iss"] == ISS and claims["sub"] == user.user_id != user.email
    assert claims["aud"] == RP and claims["azp"] == RP
    assert claims["nonce"] == "N-0S6_WzA2Mj"
    assert claims["amr"] == ["pwd"] and claims["sid"]
    assert claims["exp"] - claims["iat"] == 300
    session = aws.sessions.resolve(browser.cookies["clipron_session"])
    assert claims["auth_time"] == session.auth_time <= claims["iat"] and claims["sid"] == session.sid
    digest = hashlib.sha256(body["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert "name" not in claims and "email" not in claims  # profile claims go to UserInfo in the code flow


def test_no_nonce_in_the_code_flow_succeeds_without_a_nonce_claim(http, browser):
    claims = id_token_claims(http, tokens(http, code_for(browser, oidc_az("nonce")))["id_token"])
    assert "nonce" not in claims


def test_without_openid_there_is_no_id_token(http, browser):
    body = tokens(http, code_for(browser, oidc_az(scope="read:analysis")))
    assert "id_token" not in body


def test_the_nonce_is_bound_to_the_code_not_to_the_token_request(http, browser):
    code = code_for(browser, oidc_az(nonce="from-the-authorization-request"))
    claims = id_token_claims(http, tokens(http, code)["id_token"])
    assert claims["nonce"] == "from-the-authorization-request"


def test_an_overlong_nonce_is_refused_at_the_redirect(http, browser):
    assert_redirect_error(browser.get(oidc_az(nonce="n" * 513)), "invalid_request", uri=RP_URI)


def test_id_token_lifetime_follows_the_setting(http, browser, aws, monkeypatch):
    monkeypatch.setattr(aws.id_tokens, "lifetime", 120)
    claims = id_token_claims(http, tokens(http, code_for(browser, oidc_az()))["id_token"])
    assert claims["exp"] - claims["iat"] == 120


def test_id_tokens_are_never_unsigned_and_never_accepted_as_access_tokens(http, browser):
    body = tokens(http, code_for(browser, oidc_az()))
    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] != "none" and body["id_token"].split(".")[2]
    as_bearer = http.get("/v1/me", headers={"Authorization": "Bearer " + body["id_token"]})
    assert as_bearer.status_code == 401
    assert userinfo(http, body["id_token"]).status_code == 401


@pytest.mark.parametrize("scope", [
    "openid profile", "openid email", "email openid", "profile email openid",
    "openid address", "openid phone", "phone address email profile openid", "openid offline_access",
])
def test_scopes_in_any_order_and_unsupported_ones_are_ignored(http, browser, user, scope):
    """oidcc-scope-profile/-email/-address/-phone/-all, oidcc-ensure-other-scope-order-succeeds."""
    body = tokens(http, code_for(browser, oidc_az(scope=scope)))
    assert set(body["scope"].split()) == {"openid", "profile", "email"} & set(scope.split())
    info = json.loads(userinfo(http, body["access_token"]).body)
    assert info["sub"] == user.user_id
    assert ("name" in info) == ("profile" in scope) and ("email" in info) == ("email" in scope)
    assert "address" not in info and "phone_number" not in info
    id_token_claims(http, body["id_token"])


def test_claims_parameter_adds_claims_to_userinfo_and_the_id_token(http, browser, user):
    """oidcc-claims-essential: name asked for in userinfo with scope openid only."""
    claims = json.dumps({"userinfo": {"name": {"essential": True}, "nickname": None},
                         "id_token": {"email": {"essential": True}}})
    body = tokens(http, code_for(browser, oidc_az(scope="openid", claims=claims)))
    assert json.loads(userinfo(http, body["access_token"]).body) == {"sub": user.user_id, "name": NAME}
    assert id_token_claims(http, body["id_token"])["email"] == user.email


def test_a_malformed_claims_parameter_is_invalid_request(http, browser):
    for claims in ("{not json", "[]", '{"userinfo": []}'):
        assert_redirect_error(browser.get(oidc_az(claims=claims)), "invalid_request", uri=RP_URI)


def test_pkce_is_checked_with_openid_too(http, browser):
    code = code_for(browser, oidc_az())
    refused = exchange(http, code, code_verifier="x" * 43)
    assert refused.status_code == 400 and json.loads(refused.body)["error"] == "invalid_grant"


def test_refreshed_id_token_keeps_iss_sub_aud_azp_and_auth_time(http, browser):
    first = tokens(http, code_for(browser, oidc_az()))
    original = id_token_claims(http, first["id_token"])
    clock.travel(5)
    response = refresh(http, first["refresh_token"], scope="openid profile email")
    assert response.status_code == 200, response.body
    second = id_token_claims(http, json.loads(response.body)["id_token"])
    for name in ("iss", "sub", "aud", "azp", "auth_time", "sid"):
        assert second[name] == original[name], name
    assert second["iat"] > original["iat"] and "nonce" not in second


def test_refresh_narrowed_without_openid_has_no_id_token(http, browser):
    first = tokens(http, code_for(browser, oidc_az(scope="openid read:analysis")))
    body = json.loads(refresh(http, first["refresh_token"], scope="read:analysis").body)
    assert "access_token" in body and "id_token" not in body


@pytest.mark.store("dynamo")  # counts/reads real DynamoDB items
def test_code_exchange_with_openid_costs_no_extra_aws_call(http, browser, aws):
    """The ID token is signed with the cached key: the exchange makes the same calls as without openid
    (the code read together with the client-authentication throttle counters, and the one transaction), no KMS."""
    tokens(http, code_for(browser, oidc_az()))  # warm: client cache, key ring, private key decrypted once
    plain, openid = code_for(browser, oidc_az(scope="read:analysis")), code_for(browser, oidc_az())
    with aws_calls(aws) as without_openid:
        assert "id_token" not in tokens(http, plain)
    with aws_calls(aws) as with_openid:
        assert "id_token" in tokens(http, openid)
    assert with_openid == without_openid
    assert with_openid == ["dynamodb:BatchGetItem", "dynamodb:TransactWriteItems"]
    assert not any(call.startswith("kms:") for call in with_openid)
