"""POST /token with grant_type=authorization_code: SECURITY-TESTS T-01..T-16, T-30, F-08, F-09, F-15."""

from __future__ import annotations

import json

import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from chalicelib.oauth.errors import OAuthError
from chalicelib.records import UserRecord
from tests.race_support import all_at_once
from tests.store_support import list_client_grant_ids, save_user
from tests.token_helpers import (
    CH,
    FORM,
    V,
    assert_error,
    aws_calls,
    basic,
    endpoint_for,
    exchange,
    freeze_clock,
    refresh,
    tokens_of,
)

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

OTHER_VERIFIER = "x" * 43


def _grant_of(world, client, code):
    record = world.store.get_code(digest(code))
    return world.store.get_grant(client.client_id, record.grant_id)


def test_t01_success_response_per_rfc6749_5_1(http, world, aws):
    c1 = world.clients["C1"]
    response = exchange(http, c1, world.issue_code(c1))
    tokens = tokens_of(response)
    assert set(tokens) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "read:analysis write:analysis"
    claims = aws.access_tokens.verify(tokens["access_token"], aws.settings.api_audience)
    assert claims.sub == world.user_id and claims.client_id == c1.client_id
    assert claims.aud == aws.settings.api_audience and claims.grant_id
    assert abs((claims.exp - clock.now()) - tokens["expires_in"]) <= 1  # F-09
    assert len(tokens["refresh_token"]) >= 43  # T-41: 256-bit random, opaque


def test_t02_code_reuse_is_refused_and_revokes_what_it_issued(http, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    tokens = tokens_of(exchange(http, c1, code))
    clock.travel(1)
    assert_error(exchange(http, c1, code), 400, "invalid_grant")
    grant = _grant_of(world, c1, code)
    assert grant is not None and not grant.active(clock.now())
    assert_error(refresh(http, c1, tokens["refresh_token"]), 400, "invalid_grant")
    clock.travel(29)
    assert_error(exchange(http, c1, code), 400, "invalid_grant")


@pytest.mark.parametrize(
    "replay",
    ["wrong_verifier", "no_client_auth", "other_client"],
)
def test_t03_a_replay_with_bad_parameters_does_not_revoke(http, world, replay):
    c1, c2 = world.clients["C1"], world.clients["C2"]
    code = world.issue_code(c1)
    tokens = tokens_of(exchange(http, c1, code))
    if replay == "wrong_verifier":
        assert_error(exchange(http, c1, code, code_verifier=OTHER_VERIFIER), 400, "invalid_grant")
    elif replay == "no_client_auth":
        body = f"grant_type=authorization_code&code={code}&code_verifier={V}"
        response = http.post("/token", headers=FORM, body=body)
        assert_error(response, 401, "invalid_client")
    else:
        assert_error(exchange(http, c2, code, redirect_uri=c1.redirect_uris[0]), 400, "invalid_grant")
    assert _grant_of(world, c1, code).active(clock.now())
    tokens_of(refresh(http, c1, tokens["refresh_token"]))


@pytest.mark.store("dynamo")  # a race on DynamoDB's conditional writes
def test_t04_twenty_concurrent_redemptions_exactly_one_succeeds(aws, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": c1.redirect_uris[0],
            "code_verifier": V}
    authorization = basic(c1.client_id, c1.secret)["Authorization"]
    endpoint = endpoint_for(aws)
    results = [r.error if isinstance(r, OAuthError) else r
               for r in all_at_once(*[lambda: endpoint.handle(dict(form), authorization)] * 20)]
    successes = [r for r in results if isinstance(r, dict)]
    assert len(successes) == 1
    assert sorted(r for r in results if not isinstance(r, dict)) == ["invalid_grant"] * 19
    grant_id = world.store.get_code(digest(code)).grant_id
    assert list_client_grant_ids(aws.store, c1.client_id) == [grant_id]
    # the losers were second uses of the code: the grant it issued is revoked (documented in the README)
    assert not aws.store.get_grant(c1.client_id, grant_id).active(clock.now())


def test_t05_code_bound_to_its_client(http, world):
    c1, c2 = world.clients["C1"], world.clients["C2"]
    code = world.issue_code(c1)
    assert_error(exchange(http, c2, code, redirect_uri=c1.redirect_uris[0]), 400, "invalid_grant")
    tokens_of(exchange(http, c1, code))  # untouched: the real client still redeems it


def test_t06_public_client_binding(http, world):
    p1, p2 = world.clients["P1"], world.clients["P2"]
    code = world.issue_code(p1)
    assert_error(exchange(http, p2, code, redirect_uri=p1.redirect_uris[0]), 400, "invalid_grant")
    assert_error(exchange(http, p1, code, client_id=None), 401, "invalid_client")
    tokens = tokens_of(exchange(http, p1, code))
    assert "refresh_token" in tokens


@pytest.mark.parametrize(
    "sent, status, error",
    [
        ("https://m1.example/b", 400, "invalid_grant"),
        ("https://m1.example/a/", 400, "invalid_grant"),
        ("https://M1.example/a", 400, "invalid_grant"),
        (None, 400, "invalid_request"),
    ],
)
def test_t07_code_bound_to_the_redirect_uri(http, world, sent, status, error):
    m1 = world.clients["M1"]
    code = world.issue_code(m1, redirect_uri="https://m1.example/a")
    assert_error(exchange(http, m1, code, redirect_uri=sent), status, error)
    tokens_of(exchange(http, m1, code, redirect_uri="https://m1.example/a"))


def test_t07_redirect_uri_may_be_omitted_when_the_request_had_none(http, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1, redirect_uri_given=False)
    tokens_of(exchange(http, c1, code, redirect_uri=None))


def test_t08_f08_expired_code_still_stored_is_refused(http, world, monkeypatch):
    freeze_clock(monkeypatch)
    c1 = world.clients["C1"]
    code = world.issue_code(c1, lifetime=60)
    clock.travel(60)  # F-09: at expiry the code is expired
    assert_error(exchange(http, c1, code), 400, "invalid_grant")
    assert world.store._get(f"code#{digest(code)}", "code") is not None  # still in the table (TTL lag)


def test_f09_code_valid_one_second_before_expiry(http, world, monkeypatch):
    freeze_clock(monkeypatch)
    c1 = world.clients["C1"]
    code = world.issue_code(c1, lifetime=60)
    clock.travel(59)
    tokens_of(exchange(http, c1, code))


@pytest.mark.parametrize(
    "garbage, error",
    [("A" * 43, "invalid_grant"), ("", "invalid_request"), ("x" * 3000, "invalid_grant"),
     ("../x", "invalid_grant"), ('{"$ne":1}', "invalid_grant")],
)
def test_t09_garbage_codes(http, world, garbage, error):
    assert_error(exchange(http, world.clients["C1"], garbage), 400, error)


def test_t09_overlong_code_is_refused_before_any_lookup(world, aws, monkeypatch):
    looked_up = []
    monkeypatch.setattr(aws.store, "get_code", lambda *a, **k: looked_up.append(a))
    c1 = world.clients["C1"]
    with pytest.raises(OAuthError) as raised:
        endpoint_for(aws).handle({"grant_type": "authorization_code", "code": "x" * 300, "code_verifier": V,
                                  "redirect_uri": c1.redirect_uris[0]},
                                 basic(c1.client_id, c1.secret)["Authorization"])
    assert raised.value.error == "invalid_grant" and looked_up == []


def test_t10_pkce_mismatch(http, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    assert_error(exchange(http, c1, code, code_verifier=OTHER_VERIFIER), 400, "invalid_grant")
    tokens_of(exchange(http, c1, code))


@pytest.mark.parametrize("verifier", [None, ""])
def test_t11_t37_verifier_missing_or_empty(http, world, verifier):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    assert_error(exchange(http, c1, code, code_verifier=verifier), 400, "invalid_grant")


def test_t12_pkce_downgrade_refused(http, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1, challenge=None)
    assert_error(exchange(http, c1, code, code_verifier=V), 400, "invalid_request")
    tokens_of(exchange(http, c1, code, code_verifier=None))  # a confidential client without PKCE


@pytest.mark.parametrize("verifier", ["a" * 42, "a" * 129, "a" * 40 + "+/=", "a" * 42 + "é"])
def test_t13_verifier_syntax(http, world, verifier):
    c1 = world.clients["C1"]
    response = exchange(http, c1, world.issue_code(c1), code_verifier=verifier)
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("length", [43, 128])
def test_t13_verifiers_of_43_and_128_characters(http, world, length):
    from chalicelib.oauth.pkce import s256

    c1 = world.clients["C1"]
    verifier = ("abcDEF123-._~" * 20)[:length]
    code = world.issue_code(c1, challenge=s256(verifier))
    tokens_of(exchange(http, c1, code, code_verifier=verifier))


def test_t14_s256_is_not_plain_and_appendix_b_vector_verifies(http, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1, challenge=CH)
    assert_error(exchange(http, c1, code, code_verifier=CH), 400, "invalid_grant")
    tokens_of(exchange(http, c1, code, code_verifier=V))


@pytest.mark.parametrize("change", ["disabled", "deleted"])
def test_t15_user_gone_or_disabled(http, world, aws, change):
    c1 = world.clients["C1"]
    user = UserRecord("usr_gone" + change, f"{change}@example.com", "hash", clock.now())
    aws.store.create_user(user)
    code = world.issue_code(c1, user_id=user.user_id)
    if change == "disabled":
        user.disabled = True
        save_user(aws.store, user)
    else:
        aws.store._delete(f"user#{user.user_id}", "user")
    assert_error(exchange(http, c1, code), 400, "invalid_grant")
    assert world.store.get_code(digest(code)).used_at is None  # nothing was written


def test_t16_scope_on_the_exchange_only_narrows(http, world, aws):
    c1 = world.clients["C1"]
    wider = exchange(http, c1, world.issue_code(c1), scope="read:analysis write:analysis write:project")
    assert_error(wider, 400, "invalid_scope")
    tokens = tokens_of(exchange(http, c1, world.issue_code(c1), scope="read:analysis"))
    assert tokens["scope"] == "read:analysis"
    assert aws.access_tokens.verify(tokens["access_token"], aws.settings.api_audience).scope == ["read:analysis"]


def test_t30_unauthenticated_request_does_not_consume_the_code(http, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    wrong_secret = http.post("/token", headers={**FORM, **basic(c1.client_id, "wrong")},
                             body=f"grant_type=authorization_code&code={code}&code_verifier={V}")
    assert_error(wrong_secret, 401, "invalid_client")
    assert world.store.get_code(digest(code)).used_at is None
    tokens_of(exchange(http, c1, code))


def test_no_refresh_token_for_a_client_without_the_refresh_grant(http, world):
    nort = world.clients["NORT"]
    tokens = tokens_of(exchange(http, nort, world.issue_code(nort)))
    assert "refresh_token" not in tokens


def test_f15_identical_replay_is_never_a_cached_success(http, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    first = tokens_of(exchange(http, c1, code))
    second = exchange(http, c1, code)
    assert_error(second, 400, "invalid_grant")
    assert first["access_token"] not in second.body.decode()


@pytest.mark.store("dynamo")  # measures the stored item
def test_the_grant_is_issued_under_the_consent_and_the_consent_does_not_grow(http, world):
    """Revoking access ends the grant through the consent's generation, so the consent keeps no list of
    grants: it stays the same size however many codes are exchanged (the 400 KB item limit, issue 11)."""
    c1 = world.clients["C1"]
    sizes = []
    for _ in range(3):
        code = world.issue_code(c1)
        tokens_of(exchange(http, c1, code))
        grant = world.store.get_grant(c1.client_id, world.store.get_code(digest(code)).grant_id)
        consent = world.store.get_consent(world.user_id, c1.client_id)
        assert grant.consent_generation == consent.generation is not None
        sizes.append(len(json.dumps(world.store._get(f"user#{world.user_id}", f"consent#{c1.client_id}")
                                    .serialize(), sort_keys=True)))
    assert sizes[0] == sizes[1] == sizes[2]


@pytest.mark.store("dynamo")  # counts DynamoDB's calls
def test_call_budget_a_code_exchange_makes_two_dynamodb_calls(http, world, aws):
    """Issue 9's budget, kept with issue 11's client-authentication throttle: the code is read in one
    BatchGetItem with the throttle's two counters, then one transaction records the grant (warm client)."""
    c1 = world.clients["C1"]
    tokens_of(exchange(http, c1, world.issue_code(c1)))  # warm: client cache, key ring, signing key
    code = world.issue_code(c1)
    with aws_calls(aws) as calls:
        tokens_of(exchange(http, c1, code))
    assert calls == ["dynamodb:BatchGetItem", "dynamodb:TransactWriteItems"]
