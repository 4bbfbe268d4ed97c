"""End to end through POST /token: tokens from a real code exchange, then /revoke, /introspect and /v1."""

from __future__ import annotations

import json

import pytest

from tests.lifecycle_helpers import introspect, make_client
from tests.token_helpers import assert_error, auth_for, exchange, make_world, post_token, refresh, tokens_of

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call


def test_exchange_introspect_call_the_api_revoke_then_refresh_fails(aws, http):
    world = make_world(aws)
    c1 = world.clients["C1"]
    tokens = tokens_of(exchange(http, c1, world.issue_code(c1, scope="read:analysis write:project")))
    access, refresh_token = tokens["access_token"], tokens["refresh_token"]

    me = http.get("/v1/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 200
    assert json.loads(me.body) == {"sub": world.user_id, "client_id": c1.client_id,
                                   "scope": "read:analysis write:project"}
    answer = http.post("/introspect", body=f"token={access}".encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded", **auth_for(c1)})
    assert json.loads(answer.body)["active"] is True

    revoked = http.post("/revoke", body=f"token={refresh_token}&token_type_hint=refresh_token".encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded", **auth_for(c1)})
    assert revoked.status_code == 200 and revoked.body == b""

    assert_error(refresh(http, c1, refresh_token), 400, "invalid_grant")
    for token in (access, refresh_token):
        answer = http.post("/introspect", body=f"token={token}".encode(),
                           headers={"Content-Type": "application/x-www-form-urlencoded", **auth_for(c1)})
        assert json.loads(answer.body) == {"active": False}


def test_a_refreshed_pair_is_ended_by_revoking_the_first_access_token(aws, http):
    world = make_world(aws)
    c1 = world.clients["C1"]
    first = tokens_of(exchange(http, c1, world.issue_code(c1)))
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    form = {"Content-Type": "application/x-www-form-urlencoded", **auth_for(c1)}
    assert http.post("/revoke", body=f"token={first['access_token']}".encode(), headers=form).status_code == 200
    assert_error(refresh(http, c1, second["refresh_token"]), 400, "invalid_grant")
    answer = http.post("/introspect", body=f"token={second['access_token']}".encode(), headers=form)
    assert json.loads(answer.body) == {"active": False}


def test_r11_revoking_a_code_leaves_it_redeemable(aws, http):
    world = make_world(aws)
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    form = {"Content-Type": "application/x-www-form-urlencoded", **auth_for(c1)}
    assert http.post("/revoke", body=f"token={code}".encode(), headers=form).status_code == 200
    assert "access_token" in tokens_of(exchange(http, c1, code))


def test_client_credentials_token_from_the_token_endpoint_is_introspectable_but_not_a_user(aws, http):
    world = make_world(aws)
    cc1 = world.clients["CC1"]
    token = tokens_of(post_token(http, {"grant_type": "client_credentials", "scope": "read:analysis"},
                                 auth_for(cc1)))["access_token"]
    make_client(aws, "rs1", resource_server=True)
    body = json.loads(introspect(http, token, "rs1").body)
    assert body["active"] is True and body["sub"] == f"client:{cc1.client_id}"
    assert http.get("/v1/analyses", headers={"Authorization": f"Bearer {token}"}).status_code == 403
