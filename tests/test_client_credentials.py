"""grant_type=client_credentials (RFC 6749 §4.4): SECURITY-TESTS CC-01..CC-06."""

from __future__ import annotations

import json

import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from chalicelib.oauth.tokens import CLIENT_SUBJECT_PREFIX
from chalicelib.records import ClientRecord, ClientSecret, UserRecord
from tests.token_helpers import (
    FORM,
    assert_error,
    aws_calls,
    basic,
    freeze_clock,
    post_token,
    tokens_of,
)

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call


def _cc(http, client, **params):
    return post_token(http, {"grant_type": "client_credentials", **params}, basic(client.client_id, client.secret))


def test_cc01_success_without_refresh_token_and_with_a_client_subject(http, world, aws, monkeypatch):
    freeze_clock(monkeypatch)  # expires_in is compared with exp to the second: real time must not tick between
    cc1 = world.clients["CC1"]
    tokens = tokens_of(_cc(http, cc1, scope="read:analysis"))
    assert set(tokens) == {"access_token", "token_type", "expires_in", "scope"}
    assert tokens["token_type"] == "Bearer" and tokens["scope"] == "read:analysis"
    claims = aws.access_tokens.verify(tokens["access_token"], aws.settings.api_audience)
    assert claims.sub == CLIENT_SUBJECT_PREFIX + cc1.client_id and claims.is_client_token
    assert claims.client_id == cc1.client_id and claims.grant_id is None
    assert claims.scope == ["read:analysis"]
    assert abs(claims.exp - clock.now() - tokens["expires_in"]) <= 1


def test_cc01_client_secret_post_machine_client(http, world):
    machine = world.add_client("CCPOST", [], method="client_secret_post", grant_types=["client_credentials"])
    form = {"grant_type": "client_credentials", "client_id": machine.client_id, "client_secret": machine.secret}
    tokens_of(post_token(http, form))


def test_cc02_public_client_is_refused(http, world):
    p1 = world.clients["P1"]
    response = post_token(http, {"grant_type": "client_credentials", "client_id": p1.client_id})
    assert_error(response, 401, "invalid_client")


def test_cc03_grant_not_enabled_for_the_client(http, world):
    assert_error(_cc(http, world.clients["C1"]), 400, "unauthorized_client")


def test_cc04_scope_limited_to_the_allowlist_and_default_is_all_of_it(http, world):
    cc1 = world.clients["CC1"]
    assert_error(_cc(http, cc1, scope="read:analysis write:project"), 400, "invalid_scope")
    assert_error(_cc(http, cc1, scope="admin"), 400, "invalid_scope")
    assert_error(_cc(http, cc1, scope="read:analysis  read:project"), 400, "invalid_scope")  # malformed
    assert tokens_of(_cc(http, cc1))["scope"] == "read:analysis read:project"
    assert tokens_of(_cc(http, cc1, scope=""))["scope"] == "read:analysis read:project"  # T-37


def test_cc05_hygiene_for_this_grant(http, world):
    cc1 = world.clients["CC1"]
    wrong = post_token(http, {"grant_type": "client_credentials"}, basic(cc1.client_id, "wrong"))
    assert_error(wrong, 401, "invalid_client")
    assert wrong.headers["WWW-Authenticate"].startswith("Basic realm=")
    unknown = post_token(http, {"grant_type": "client_credentials"}, basic("app_nobody", "wrong"))
    assert unknown.status_code == 401 and unknown.body == wrong.body
    duplicate = post_token(http, [("grant_type", "client_credentials"), ("scope", "read:analysis"),
                                  ("scope", "read:project")], basic(cc1.client_id, cc1.secret))
    assert_error(duplicate, 400, "invalid_request")
    as_json = http.post("/token", headers={"Content-Type": "application/json", **basic(cc1.client_id, cc1.secret)},
                        body=json.dumps({"grant_type": "client_credentials"}))
    assert_error(as_json, 400, "invalid_request")
    in_url = http.post("/token?grant_type=client_credentials", headers={**FORM, **basic(cc1.client_id, cc1.secret)},
                       body="")
    assert_error(in_url, 400, "invalid_request")
    both = post_token(http, {"grant_type": "client_credentials", "client_secret": cc1.secret},
                      basic(cc1.client_id, cc1.secret))
    assert_error(both, 400, "invalid_request")


def test_cc06_client_subject_never_collides_with_a_user_subject(http, world, aws):
    user = UserRecord("app_samename", "same@example.com", "hash", clock.now())
    aws.store.create_user(user)
    secret = "collision-secret-" + "x" * 30
    aws.store.create_client(ClientRecord("app_samename", "Same", [], ["read:analysis"], ["client_credentials"],
                                         "client_secret_basic", secrets=[ClientSecret(digest(secret))]))
    tokens = tokens_of(post_token(http, {"grant_type": "client_credentials"}, basic("app_samename", secret)))
    claims = aws.access_tokens.verify(tokens["access_token"], aws.settings.api_audience)
    assert claims.sub == "client:app_samename" != user.user_id


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_warm_client_credentials_reads_only_its_throttle_counters(http, world, aws):
    """No KMS call and no write: one BatchGetItem of the client-authentication throttle's two counters
    (client id + source, and source), which a success must pass before it answers."""
    cc1 = world.clients["CC1"]
    tokens_of(_cc(http, cc1))  # warms the client cache and the signing key
    with aws_calls(aws) as calls:
        tokens_of(_cc(http, cc1))
    assert calls == ["dynamodb:BatchGetItem"]


def test_metadata_advertises_every_grant_of_the_token_endpoint(http):
    metadata = json.loads(http.get("/.well-known/oauth-authorization-server").body)
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(metadata["grant_types_supported"])
