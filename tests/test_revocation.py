"""RFC 7009 revocation (SECURITY-TESTS.md group R): POST /revoke ends the whole grant."""

from __future__ import annotations

import functools
import json

import pytest
from botocore.exceptions import ClientError

from chalicelib import clock
from chalicelib.crypto.secrets import digest, new_token
from chalicelib.records import ConditionFailed, RefreshTokenRecord
from chalicelib.store.dynamo import shared_connection
from tests.lifecycle_helpers import (
    basic,
    client_token,
    grant_revoked,
    introspect,
    mint,
    post_form,
    put_code,
    revoke,
)
from tests.race_support import all_at_once

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call


def assert_empty_200(response) -> None:
    assert response.status_code == 200
    assert response.body == b""
    assert response.headers["Cache-Control"] == "no-store"


def active(http, token: str) -> bool:
    return json.loads(introspect(http, token).body)["active"]


def refresh_rotation_refused(services, minted) -> bool:
    """What /token's refresh grant relies on: rotation is conditioned on the grant not being revoked."""
    old = services.store.get_refresh_token(digest(minted.refresh_token))
    now = clock.now()
    new = RefreshTokenRecord(digest(new_token()), old.grant_id, old.client_id, old.user_id, old.scope, now, now + 60)
    try:
        services.store.rotate_refresh_token(old, new, "sealed")
    except ConditionFailed:
        return True
    return False


def test_r01_revoking_a_refresh_token_ends_the_grant(clients, http):
    minted = mint(clients, "c1")
    assert active(http, minted.access_token) and active(http, minted.refresh_token)

    assert_empty_200(revoke(http, minted.refresh_token, token_type_hint="refresh_token"))

    assert grant_revoked(clients, minted)
    assert not active(http, minted.refresh_token)
    assert not active(http, minted.access_token)  # the access tokens of the grant go too
    assert refresh_rotation_refused(clients, minted)


def test_r02_revoking_an_access_token_ends_the_grant_and_its_refresh_token(clients, http):
    minted = mint(clients, "c1")
    assert_empty_200(revoke(http, minted.access_token, token_type_hint="access_token"))
    assert json.loads(introspect(http, minted.access_token).body) == {"active": False}
    assert not active(http, minted.refresh_token)  # policy: the whole grant, refresh token included


def test_r02_an_expired_access_token_still_ends_its_grant(clients, http):
    minted = mint(clients, "c1")
    clock.travel(clients.settings.access_token_seconds + 5)
    assert_empty_200(revoke(http, minted.access_token))
    assert grant_revoked(clients, minted)


def test_a_rotated_refresh_token_still_ends_its_grant(clients, http):
    minted = mint(clients, "c1")
    assert not refresh_rotation_refused(clients, minted)  # rotated: now spent
    assert_empty_200(revoke(http, minted.refresh_token))
    assert grant_revoked(clients, minted)


def test_client_credentials_access_tokens_cannot_be_revoked(clients, http):
    token = client_token(clients, "c1")
    response = revoke(http, token)
    assert response.status_code == 400
    assert json.loads(response.body)["error"] == "unsupported_token_type"
    assert active(http, token)
    clock.travel(clients.settings.access_token_seconds)
    assert_empty_200(revoke(http, token))  # expired: nothing left to revoke


def test_r03_unknown_and_garbage_tokens_get_200_and_change_nothing(clients, http):
    minted = mint(clients, "c1")
    for token in ["unknown-" + "x" * 40, "garbage", "", "a.b.c", "é" * 10, "x" * 4000]:
        assert_empty_200(revoke(http, token))
    assert not grant_revoked(clients, minted)
    assert json.loads(introspect(http, minted.access_token).body)["active"] is True


def test_r03_expired_and_already_revoked_tokens_get_200(clients, http):
    expired = mint(clients, "c1", refresh_seconds=60)
    clock.travel(61)
    assert_empty_200(revoke(http, expired.refresh_token))
    assert not grant_revoked(clients, expired)  # an expired refresh token is no token at all

    minted = mint(clients, "c1")
    assert_empty_200(revoke(http, minted.refresh_token))
    first = clients.store.get_grant("c1", minted.grant_id).revoked_at
    clock.travel(10)
    assert_empty_200(revoke(http, minted.refresh_token))
    assert_empty_200(revoke(http, minted.access_token))
    assert clients.store.get_grant("c1", minted.grant_id).revoked_at == first


@pytest.mark.parametrize("kind, hint", [
    ("refresh_token", "access_token"), ("access_token", "refresh_token"),
    ("refresh_token", "foo"), ("access_token", "foo"),
])
def test_r04_a_wrong_or_unknown_hint_still_finds_the_token(clients, http, kind, hint):
    minted = mint(clients, "c1")
    assert_empty_200(revoke(http, getattr(minted, kind), token_type_hint=hint))
    assert grant_revoked(clients, minted)


@pytest.mark.parametrize("kind", ["refresh_token", "access_token"])
def test_r05_a_confidential_client_cannot_revoke_another_clients_token(clients, http, kind):
    minted = mint(clients, "c1")
    response = revoke(http, getattr(minted, kind), client_id="c2")
    assert response.status_code == 400
    assert json.loads(response.body)["error"] == "unauthorized_client"
    assert response.headers["Cache-Control"] == "no-store"
    assert not grant_revoked(clients, minted)
    assert active(http, minted.refresh_token) and active(http, minted.access_token)


def test_r06_authentication_is_required(clients, http):
    minted = mint(clients, "c1")
    missing = post_form(http, "/revoke", {"token": minted.refresh_token})
    assert missing.status_code == 401
    assert json.loads(missing.body)["error"] == "invalid_client"
    wrong = post_form(http, "/revoke", {"token": minted.refresh_token}, basic("c1", "wrong-secret"))
    assert wrong.status_code == 401
    assert json.loads(wrong.body)["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    # a confidential client cannot fall back to `none` (client_id only)
    as_public = post_form(http, "/revoke", {"token": minted.refresh_token, "client_id": "c1"})
    assert as_public.status_code == 401
    assert not grant_revoked(clients, minted)


def test_r07_request_hygiene(clients, http):
    minted = mint(clients, "c1")
    no_token = post_form(http, "/revoke", {}, basic("c1"))
    assert no_token.status_code == 400
    assert json.loads(no_token.body)["error"] == "invalid_request"
    twice = post_form(http, "/revoke", [("token", minted.refresh_token), ("token", "x")], basic("c1"))
    assert twice.status_code == 400
    assert json.loads(twice.body)["error"] == "invalid_request"
    as_json = http.post("/revoke", body=json.dumps({"token": minted.refresh_token}).encode(),
                        headers={"Content-Type": "application/json", **basic("c1")})
    assert as_json.status_code == 400
    assert json.loads(as_json.body)["error"] == "invalid_request"
    in_query = http.post(f"/revoke?token={minted.refresh_token}", body=b"",
                         headers={"Content-Type": "application/x-www-form-urlencoded", **basic("c1")})
    assert in_query.status_code == 400
    got = http.get("/revoke", headers=basic("c1"))
    assert got.status_code == 405
    assert got.headers["Allow"] == "POST"
    assert not grant_revoked(clients, minted)


def test_r08_a_public_client_revokes_its_own_token_and_is_silently_ignored_for_others(clients, http):
    own = mint(clients, "p1")
    assert_empty_200(post_form(http, "/revoke", {"token": own.refresh_token, "client_id": "p1"}))
    assert grant_revoked(clients, own)

    foreign = mint(clients, "c1")
    for token in (foreign.refresh_token, foreign.access_token):
        assert_empty_200(post_form(http, "/revoke", {"token": token, "client_id": "p1"}))
    assert not grant_revoked(clients, foreign)


@pytest.mark.store("dynamo")  # a race on DynamoDB's conditional writes
def test_r09_concurrent_revocations_all_succeed_and_revoke_one_family(clients):
    minted = mint(clients, "c1")
    other = mint(clients, "c1")
    caller = clients.store.get_client("c1")
    revoker = clients.revoker
    outcomes = all_at_once(*[functools.partial(revoker.revoke, caller, minted.refresh_token)] * 10)
    assert [o for o in outcomes if isinstance(o, Exception)] == []
    assert grant_revoked(clients, minted)
    assert not grant_revoked(clients, other)


def test_r09_a_revocation_racing_a_refresh_leaves_no_usable_token(clients, http):
    minted = mint(clients, "c1")
    assert_empty_200(revoke(http, minted.refresh_token))
    assert refresh_rotation_refused(clients, minted)  # the refresh lost: the family flag is checked


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_r10_a_store_failure_is_a_503_and_a_retry_revokes(clients, http):
    minted = mint(clients, "c1")
    events = shared_connection().client.meta.events

    def throttle(**_: object) -> None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                          "UpdateItem")

    events.register("before-call.dynamodb.UpdateItem", throttle)
    try:
        response = revoke(http, minted.refresh_token)
    finally:
        events.unregister("before-call.dynamodb.UpdateItem", throttle)
    assert response.status_code == 503
    assert json.loads(response.body)["error"] == "temporarily_unavailable"
    assert "Retry-After" in response.headers
    assert not grant_revoked(clients, minted)

    assert_empty_200(revoke(http, minted.refresh_token))
    assert grant_revoked(clients, minted)


def test_r11_an_authorization_code_sent_for_revocation_has_no_effect(clients, http):
    minted = mint(clients, "c1")
    code = put_code(clients, minted)
    assert_empty_200(revoke(http, code))
    assert clients.store.get_code(digest(code)).used_at is None
    assert not grant_revoked(clients, minted)
