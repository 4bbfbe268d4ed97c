"""grant_type=refresh_token: rotation, reuse detection, the concurrent-refresh grace (RT-01..RT-15, F-05, F-06,
F-08, F-09). The grace window is settings.refresh_replay_seconds: REFRESH_GRACE_SECONDS (10 s by default)
counted from when the answer can have left (after the longest request)."""

from __future__ import annotations

import json

import boto3
import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from tests.race_support import all_at_once
from tests.store_support import save_user
from tests.token_helpers import (
    assert_error,
    aws_calls,
    basic,
    endpoint_for,
    exchange,
    fault,
    freeze_clock,
    make_world,
    post_token,
    refresh,
    tokens_of,
)

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

DAY = 86400


@pytest.fixture
def world(aws, monkeypatch):
    freeze_clock(monkeypatch)  # grace and expiry boundaries are to the second
    return make_world(aws)


def _start(http, world, name="C1", scope="read:analysis write:analysis"):
    client = world.clients[name]
    return client, tokens_of(exchange(http, client, world.issue_code(client, scope=scope)))


def _grant(world, client, refresh_token):
    record = world.store.get_refresh_token(digest(refresh_token))
    return world.store.get_grant(client.client_id, record.grant_id)


def _active(world, client, refresh_token) -> bool:
    return _grant(world, client, refresh_token).active(clock.now())


def test_rt01_rotation_issues_a_new_pair(http, world, aws):
    c1, first = _start(http, world)
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["token_type"] == "Bearer" and second["scope"] == first["scope"]
    claims = aws.access_tokens.verify(second["access_token"], aws.settings.api_audience)
    assert claims.sub == world.user_id and claims.grant_id
    clock.travel(aws.settings.refresh_replay_seconds)
    assert_error(refresh(http, c1, first["refresh_token"]), 400, "invalid_grant")


def test_rt02_reuse_after_the_window_revokes_the_family(http, world, aws):
    c1, first = _start(http, world)
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    clock.travel(aws.settings.refresh_replay_seconds)
    assert_error(refresh(http, c1, first["refresh_token"]), 400, "invalid_grant")
    assert not _active(world, c1, second["refresh_token"])
    assert_error(refresh(http, c1, second["refresh_token"]), 400, "invalid_grant")


def test_rt03_revoking_a_family_touches_that_grant_only(http, world, aws):
    c1, doomed = _start(http, world)
    _, kept = _start(http, world)
    _, other_client = _start(http, world, "C2")
    tokens_of(refresh(http, c1, doomed["refresh_token"]))
    clock.travel(aws.settings.refresh_replay_seconds)
    assert_error(refresh(http, c1, doomed["refresh_token"]), 400, "invalid_grant")
    tokens_of(refresh(http, c1, kept["refresh_token"]))
    tokens_of(refresh(http, world.clients["C2"], other_client["refresh_token"]))


def test_rt04_narrowing_keeps_the_refresh_token_scope(http, world, aws):
    c1, first = _start(http, world)
    narrowed = tokens_of(refresh(http, c1, first["refresh_token"], scope="read:analysis"))
    assert narrowed["scope"] == "read:analysis"
    assert aws.access_tokens.verify(narrowed["access_token"], aws.settings.api_audience).scope == ["read:analysis"]
    assert world.store.get_refresh_token(digest(narrowed["refresh_token"])).scope == "read:analysis write:analysis"
    other = tokens_of(refresh(http, c1, narrowed["refresh_token"], scope="write:analysis"))
    assert other["scope"] == "write:analysis"


def test_rt05_widening_is_invalid_scope_without_rotation_or_revocation(http, world):
    c1, first = _start(http, world)
    response = refresh(http, c1, first["refresh_token"], scope="read:analysis write:analysis write:project")
    assert_error(response, 400, "invalid_scope")
    assert world.store.get_refresh_token(digest(first["refresh_token"])).used_at is None
    assert _active(world, c1, first["refresh_token"])
    tokens_of(refresh(http, c1, first["refresh_token"]))


def test_rt06_bound_to_the_client_and_a_foreign_client_does_not_revoke(http, world, aws):
    c1, first = _start(http, world)
    assert_error(refresh(http, world.clients["C2"], first["refresh_token"]), 400, "invalid_grant")
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    clock.travel(aws.settings.refresh_replay_seconds)
    assert_error(refresh(http, world.clients["C2"], first["refresh_token"]), 400, "invalid_grant")  # rotated, foreign
    assert _active(world, c1, second["refresh_token"])
    tokens_of(refresh(http, c1, second["refresh_token"]))


def test_rt07_no_client_authentication_does_not_consume(http, world):
    c1, first = _start(http, world)
    response = post_token(http, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert_error(response, 401, "invalid_client")
    response = post_token(http, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                          basic(c1.client_id, "wrong"))
    assert_error(response, 401, "invalid_client")
    assert world.store.get_refresh_token(digest(first["refresh_token"])).used_at is None


def test_rt08_public_client_binding(http, world):
    p1, first = _start(http, world, "P1")
    assert_error(refresh(http, world.clients["P2"], first["refresh_token"]), 400, "invalid_grant")
    assert_error(refresh(http, p1, first["refresh_token"], client_id=None), 401, "invalid_client")
    tokens_of(refresh(http, p1, first["refresh_token"]))


@pytest.mark.store("dynamo")  # a race on DynamoDB's conditional writes
def test_rt09_ten_parallel_refreshes_get_one_response_and_one_chain(http, world, aws):
    c1, first = _start(http, world)
    endpoint = endpoint_for(aws)
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    authorization = basic(c1.client_id, c1.secret)["Authorization"]
    results = all_at_once(*[lambda: endpoint.handle(dict(form), authorization)] * 10)
    assert all(isinstance(r, dict) for r in results), results
    assert len({r["refresh_token"] for r in results}) == 1  # type: ignore[index]
    assert len({r["access_token"] for r in results}) == 1  # type: ignore[index]
    successor = results[0]["refresh_token"]  # type: ignore[index]
    old = world.store.get_refresh_token(digest(first["refresh_token"]))
    assert old.successor_digest == digest(successor)
    items = boto3.resource("dynamodb").Table(aws.settings.table_name).scan()["Items"]
    assert len([i for i in items if i["kind"] == "refresh"]) == 2  # RT1 (spent) and RT2: one chain
    tokens_of(refresh(http, c1, successor))


def test_rt10_retry_after_a_lost_response_gets_the_same_response(http, world, aws):
    c1, first = _start(http, world)
    lost = tokens_of(refresh(http, c1, first["refresh_token"]))
    clock.travel(aws.settings.refresh_replay_seconds - 1)
    retry = tokens_of(refresh(http, c1, first["refresh_token"]))
    assert retry["refresh_token"] == lost["refresh_token"]
    assert retry["access_token"] == lost["access_token"]
    assert retry["expires_in"] == lost["expires_in"] - (aws.settings.refresh_replay_seconds - 1)  # F-09
    assert _active(world, c1, first["refresh_token"])
    tokens_of(refresh(http, c1, retry["refresh_token"]))


def test_rt10_retry_after_the_window_revokes(http, world, aws):
    c1, first = _start(http, world)
    lost = tokens_of(refresh(http, c1, first["refresh_token"]))
    clock.travel(aws.settings.refresh_replay_seconds)
    assert_error(refresh(http, c1, first["refresh_token"]), 400, "invalid_grant")
    assert_error(refresh(http, c1, lost["refresh_token"]), 400, "invalid_grant")


def test_rt10_retry_after_the_successor_was_used_revokes(http, world):
    c1, first = _start(http, world)
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    third = tokens_of(refresh(http, c1, second["refresh_token"]))
    assert_error(refresh(http, c1, first["refresh_token"]), 400, "invalid_grant")  # within the window
    assert_error(refresh(http, c1, third["refresh_token"]), 400, "invalid_grant")


def test_grace_with_a_different_scope_is_no_repeat_and_does_not_revoke(http, world):
    c1, first = _start(http, world)
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    assert_error(refresh(http, c1, first["refresh_token"], scope="read:analysis"), 400, "invalid_grant")
    tokens_of(refresh(http, c1, second["refresh_token"]))


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_grace_response_at_rest_is_sealed_under_the_presented_token(http, world, aws):
    from chalicelib.crypto.sealing import open_with_token
    from chalicelib.oauth.grants import GRACE_PURPOSE

    c1, first = _start(http, world)
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    items = json.dumps(boto3.resource("dynamodb").Table(aws.settings.table_name).scan()["Items"], default=str)
    assert second["refresh_token"] not in items and second["access_token"] not in items
    sealed = world.store.get_refresh_token(digest(first["refresh_token"])).grace_response
    assert open_with_token(second["refresh_token"], GRACE_PURPOSE, sealed) is None
    assert json.loads(open_with_token(first["refresh_token"], GRACE_PURPOSE, sealed))["body"] == second


def test_rt11_idle_expiry(http, world, aws):
    c1, first = _start(http, world)
    clock.travel(aws.settings.refresh_idle_seconds - 1)  # F-09: valid at exp - 1
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    clock.travel(aws.settings.refresh_idle_seconds)  # F-09: expired at exp
    assert_error(refresh(http, c1, second["refresh_token"]), 400, "invalid_grant")
    assert world.store._get(f"rt#{digest(second['refresh_token'])}", "rt") is not None  # F-08: still stored


def test_rt11_absolute_expiry(http, world, aws):
    c1, tokens = _start(http, world)
    step = aws.settings.refresh_idle_seconds - DAY
    elapsed = 0
    while elapsed + step < aws.settings.refresh_absolute_seconds:
        clock.travel(step)
        elapsed += step
        tokens = tokens_of(refresh(http, c1, tokens["refresh_token"]))
    clock.travel(aws.settings.refresh_absolute_seconds - elapsed)
    assert_error(refresh(http, c1, tokens["refresh_token"]), 400, "invalid_grant")


def test_rt11_a_grace_never_revives_an_expired_token(http, world, aws):
    c1, first = _start(http, world)
    clock.travel(aws.settings.refresh_idle_seconds - 1)
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    clock.travel(1)  # within the grace window, but the first token has expired
    assert_error(refresh(http, c1, first["refresh_token"]), 400, "invalid_grant")
    tokens_of(refresh(http, c1, second["refresh_token"]))


def test_rt12_revoked_grant_or_disabled_user_cannot_refresh(http, world, aws):
    c1, revoked = _start(http, world)
    grant = _grant(world, c1, revoked["refresh_token"])
    aws.store.revoke_grant(c1.client_id, grant.grant_id)
    assert_error(refresh(http, c1, revoked["refresh_token"]), 400, "invalid_grant")

    _, other = _start(http, world)
    user = aws.store.get_user(world.user_id)
    user.disabled = True
    save_user(aws.store, user)
    assert_error(refresh(http, c1, other["refresh_token"]), 400, "invalid_grant")
    assert world.store.get_refresh_token(digest(other["refresh_token"])).used_at is None


def test_rt13_tampered_token(http, world):
    c1, first = _start(http, world)
    token = first["refresh_token"]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert_error(refresh(http, c1, flipped), 400, "invalid_grant")
    tokens_of(refresh(http, c1, token))


def test_rt14_token_type_confusion(http, world):
    c1, first = _start(http, world)
    assert_error(refresh(http, c1, first["access_token"]), 400, "invalid_grant")
    assert_error(refresh(http, c1, world.issue_code(c1)), 400, "invalid_grant")
    assert_error(exchange(http, c1, first["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize("garbage, error", [("A" * 43, "invalid_grant"), ("", "invalid_request"),
                                            ("x" * 10240, "invalid_request"), ("x" * 300, "invalid_grant")])
def test_rt15_garbage(http, world, garbage, error):
    assert_error(refresh(http, world.clients["C1"], garbage), 400, error)


def test_refresh_needs_the_refresh_grant(http, world):
    nort = world.clients["NORT"]
    assert_error(refresh(http, nort, "A" * 43), 400, "unauthorized_client")


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_f05_failed_rotation_leaves_the_old_token_valid_and_no_successor(http, world, aws):
    c1, first = _start(http, world)
    with fault(aws, "TransactWriteItems", "ThrottlingException"):
        assert_error(refresh(http, c1, first["refresh_token"]), 503, "temporarily_unavailable")
    assert world.store.get_refresh_token(digest(first["refresh_token"])).used_at is None
    items = boto3.resource("dynamodb").Table(aws.settings.table_name).scan()["Items"]
    assert len([i for i in items if i["kind"] == "refresh"]) == 1
    with fault(aws, "TransactWriteItems", "TransactionCanceledException", reasons=["ConditionalCheckFailed"] * 4):
        assert_error(refresh(http, c1, first["refresh_token"]), 400, "invalid_grant")
    tokens_of(refresh(http, c1, first["refresh_token"]))


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_f06_family_revocation_fails_closed(http, world, aws):
    c1, first = _start(http, world)
    tokens_of(refresh(http, c1, first["refresh_token"]))
    clock.travel(aws.settings.refresh_replay_seconds)
    with fault(aws, "UpdateItem", "InternalServerError"):
        response = refresh(http, c1, first["refresh_token"])
    assert_error(response, 503, "temporarily_unavailable")
    assert_error(refresh(http, c1, first["refresh_token"]), 400, "invalid_grant")
    assert not _active(world, c1, first["refresh_token"])


@pytest.mark.parametrize("change", ["grant_revoked", "user_disabled"])
def test_grace_never_revives_a_revoked_grant_or_a_disabled_user(http, world, aws, change):
    c1, first = _start(http, world)
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    if change == "grant_revoked":
        aws.store.revoke_grant(c1.client_id, _grant(world, c1, first["refresh_token"]).grant_id)
    else:
        user = aws.store.get_user(world.user_id)
        user.disabled = True
        save_user(aws.store, user)
    response = refresh(http, c1, first["refresh_token"])  # within the window, successor unused
    assert_error(response, 400, "invalid_grant")
    assert second["refresh_token"] not in response.body.decode()


@pytest.mark.store("dynamo")  # counts DynamoDB's calls
def test_call_budget_a_refresh_makes_two_dynamodb_calls(http, world, aws):
    """The refresh token is read in one BatchGetItem with the client-authentication throttle's two
    counters, then one transaction rotates it (warm client)."""
    c1, first = _start(http, world)
    second = tokens_of(refresh(http, c1, first["refresh_token"]))  # warm: client cache, key ring
    with aws_calls(aws) as calls:
        tokens_of(refresh(http, c1, second["refresh_token"]))
    assert calls == ["dynamodb:BatchGetItem", "dynamodb:TransactWriteItems"]
