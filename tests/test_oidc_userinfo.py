"""The UserInfo endpoint (OIDC Core §5.3, RFC 6750): oidcc-userinfo-get, -post-header, -post-body,
oidcc-codereuse and oidcc-codereuse-30seconds (the first exchange's tokens stop working here)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from chalicelib import clock
from tests.authorize_support import Browser
from tests.oidc_support import (
    FORM,
    NAME,
    RP,
    code_for,
    exchange,
    oidc_az,
    setup_oidc,
    tokens,
    userinfo,
)
from tests.store_support import list_client_grant_ids, save_user
from tests.token_helpers import aws_calls, freeze_clock

pytestmark = pytest.mark.store("memory")


@pytest.fixture
def user(aws):
    return setup_oidc(aws)


@pytest.fixture
def signed_in(http, user):
    return tokens(http, code_for(Browser(http), oidc_az()))


def assert_bearer_error(response, status: int, error: str | None) -> str:
    assert response.status_code == status, response.body
    assert response.headers["Cache-Control"] == "no-store"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="clipron"')
    if error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{error}"' in challenge and json.loads(response.body)["error"] == error
    return challenge


@pytest.mark.parametrize("method,in_body", [("GET", False), ("POST", False), ("POST", True)])
def test_userinfo_answers_by_get_post_header_and_post_body(http, user, signed_in, method, in_body):
    response = userinfo(http, signed_in["access_token"], method, in_body)
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert json.loads(response.body) == {
        "sub": user.user_id, "name": NAME, "email": user.email, "email_verified": True, "updated_at": user.updated_at,
    }


def test_userinfo_sub_matches_the_id_token(http, signed_in):
    from tests.oidc_support import id_token_claims

    info = json.loads(userinfo(http, signed_in["access_token"]).body)
    assert info["sub"] == id_token_claims(http, signed_in["id_token"])["sub"]


def test_claims_follow_the_granted_scope(http, user):
    body = tokens(http, code_for(Browser(http), oidc_az(scope="openid")))
    assert json.loads(userinfo(http, body["access_token"]).body) == {"sub": user.user_id}


def test_no_token_is_401_with_a_bare_challenge(http):
    assert_bearer_error(http.get("/userinfo"), 401, None)


def test_a_bad_token_is_invalid_token(http, user):
    assert_bearer_error(userinfo(http, "not-a-token"), 401, "invalid_token")


def test_a_token_without_openid_is_insufficient_scope(http, user):
    body = tokens(http, code_for(Browser(http), oidc_az(scope="read:analysis")))
    challenge = assert_bearer_error(userinfo(http, body["access_token"]), 403, "insufficient_scope")
    assert 'scope="openid"' in challenge


def test_an_expired_token_is_invalid_token(http, signed_in, monkeypatch):
    freeze_clock(monkeypatch)
    clock.travel(901)
    assert_bearer_error(userinfo(http, signed_in["access_token"]), 401, "invalid_token")


def test_the_token_in_header_and_body_at_once_is_invalid_request(http, signed_in):
    token = signed_in["access_token"]
    response = http.post("/userinfo", headers={**FORM, "Authorization": f"Bearer {token}"},
                         body=urlencode({"access_token": token}))
    assert_bearer_error(response, 400, "invalid_request")


def test_a_revoked_grant_is_refused_at_once(http, signed_in, aws):
    grant_ids = list_client_grant_ids(aws.store, RP)
    aws.store.revoke_grant(RP, grant_ids[0])
    assert_bearer_error(userinfo(http, signed_in["access_token"]), 401, "invalid_token")


def test_a_disabled_user_is_refused(http, signed_in, aws, user):
    user.disabled = True
    save_user(aws.store, user)
    assert_bearer_error(userinfo(http, signed_in["access_token"]), 401, "invalid_token")


@pytest.mark.parametrize("wait", [0, 30])
def test_code_reuse_revokes_the_first_exchange_tokens(http, user, monkeypatch, wait):
    """oidcc-codereuse / oidcc-codereuse-30seconds: the second exchange fails, and the access token of the
    first stops answering UserInfo."""
    freeze_clock(monkeypatch)
    code = code_for(Browser(http), oidc_az())
    first = tokens(http, code)
    assert userinfo(http, first["access_token"]).status_code == 200
    clock.travel(wait)
    again = exchange(http, code)
    assert again.status_code == 400 and json.loads(again.body)["error"] == "invalid_grant"
    assert_bearer_error(userinfo(http, first["access_token"]), 401, "invalid_token")


def test_a_client_credentials_token_is_refused(http, aws):
    from tests.token_helpers import make_world, post_token

    world = make_world(aws)
    cc = world.clients["CC1"]
    from tests.token_helpers import basic

    body = json.loads(post_token(http, {"grant_type": "client_credentials"}, basic(cc.client_id, cc.secret)).body)
    assert_bearer_error(userinfo(http, body["access_token"]), 401, "invalid_token")


@pytest.mark.store("dynamo")  # counts/reads real DynamoDB items
def test_userinfo_costs_two_dynamodb_reads_and_no_kms(http, signed_in, aws):
    userinfo(http, signed_in["access_token"])  # warm
    with aws_calls(aws) as calls:
        assert userinfo(http, signed_in["access_token"]).status_code == 200
    assert calls == ["dynamodb:GetItem", "dynamodb:GetItem"]
