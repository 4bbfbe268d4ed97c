"""Client authentication at POST /token: SECURITY-TESTS T-17..T-28 (and CC-05 for client_credentials)."""

from __future__ import annotations

import base64
import json

import pytest

from chalicelib import clock
from chalicelib.oauth import clients as client_rules
from chalicelib.oauth.registration import rotate_secret
from tests.store_support import save_client
from tests.token_helpers import (
    CLIENT_LIMITS,
    FORM,
    V,
    assert_error,
    basic,
    exchange,
    freeze_clock,
    post_token,
    refresh,
    tokens_of,
)

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

REALM = 'Basic realm="clipron"'


def _code_form(client, code, **extra):
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
            "code_verifier": V, **extra}


def test_t17_wrong_secret_with_basic(http, world):
    c1 = world.clients["C1"]
    response = post_token(http, _code_form(c1, world.issue_code(c1)), basic(c1.client_id, "wrong"))
    assert_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"] == REALM


def test_t18_wrong_secret_in_the_body(http, world):
    post1 = world.clients["POST1"]
    form = _code_form(post1, world.issue_code(post1), client_id=post1.client_id, client_secret="bad")
    response = post_token(http, form)
    assert_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" not in response.headers


def test_t19_unknown_client_answers_like_a_wrong_secret(http, world):
    c1 = world.clients["C1"]
    form = _code_form(c1, world.issue_code(c1))
    unknown = post_token(http, form, basic("app_nobody", "whatever"))
    wrong = post_token(http, form, basic(c1.client_id, "whatever"))
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.body == wrong.body
    assert unknown.headers == wrong.headers


def test_t20_confidential_client_without_authentication(http, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    assert_error(post_token(http, _code_form(c1, code, client_id=c1.client_id)), 401, "invalid_client")
    tokens_of(exchange(http, c1, code))


def test_t21_two_mechanisms(http, world):
    c1 = world.clients["C1"]
    form = _code_form(c1, world.issue_code(c1), client_secret=c1.secret)
    assert_error(post_token(http, form, basic(c1.client_id, c1.secret)), 400, "invalid_request")


def test_t37_empty_client_secret_beside_basic_is_not_a_second_mechanism(http, world):
    c1 = world.clients["C1"]
    form = _code_form(c1, world.issue_code(c1), client_secret="")
    tokens_of(post_token(http, form, basic(c1.client_id, c1.secret)))


def test_t22_mismatched_client_id(http, world):
    c1, c2 = world.clients["C1"], world.clients["C2"]
    form = _code_form(c1, world.issue_code(c1), client_id=c2.client_id)
    assert_error(post_token(http, form, basic(c1.client_id, c1.secret)), 400, "invalid_request")


def test_t23_registered_method_is_enforced(http, world):
    c1, p1 = world.clients["C1"], world.clients["P1"]
    as_post = _code_form(c1, world.issue_code(c1), client_id=c1.client_id, client_secret=c1.secret)
    assert_error(post_token(http, as_post), 401, "invalid_client")
    p1_with_secret = _code_form(p1, world.issue_code(p1), client_id=p1.client_id, client_secret="anything")
    assert_error(post_token(http, p1_with_secret), 401, "invalid_client")
    post1 = world.clients["POST1"]
    as_basic = _code_form(post1, world.issue_code(post1))
    assert_error(post_token(http, as_basic, basic(post1.client_id, post1.secret)), 401, "invalid_client")


def test_t24_lowercase_basic_scheme_is_accepted(http, world):
    c1 = world.clients["C1"]
    tokens_of(post_token(http, _code_form(c1, world.issue_code(c1)), basic(c1.client_id, c1.secret, "basic")))


def test_t24_urlencoded_secret_with_reserved_characters_round_trips(http, world):
    odd = world.add_client("ODD", ["https://odd.example/cb"], secret="a:b%c+d e/f")
    tokens_of(exchange(http, odd, world.issue_code(odd)))


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic !!!not-base64!!!",
        "Basic",
        "Basic ",
        "Bearer abc",
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + "A" * 8192,
    ],
)
def test_t24_malformed_basic_is_4xx_never_5xx(http, world, authorization):
    c1 = world.clients["C1"]
    response = post_token(http, _code_form(c1, world.issue_code(c1)), {"Authorization": authorization})
    assert response.status_code in (400, 401)
    assert json.loads(response.body)["error"] in ("invalid_client", "invalid_request")
    assert response.headers["Cache-Control"] == "no-store"


def test_t24_two_authorization_headers_are_refused(aws, world):
    """chalice's test client cannot send a header twice; API Gateway passes both in multiValueHeaders."""
    from app import app

    c1 = world.clients["C1"]
    good = basic(c1.client_id, c1.secret)["Authorization"]
    form = "&".join(f"{k}={v}" for k, v in _code_form(c1, world.issue_code(c1)).items())
    event = {
        "resource": "/token", "path": "/token", "httpMethod": "POST",
        "headers": {"Content-Type": FORM["Content-Type"], "Authorization": good},
        "multiValueHeaders": {"Content-Type": [FORM["Content-Type"]], "Authorization": [good, good]},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None, "body": form, "isBase64Encoded": False,
        "requestContext": {"httpMethod": "POST", "resourcePath": "/token", "path": "/token", "requestId": "r1",
                           "identity": {"sourceIp": "127.0.0.1"}},
    }
    response = app(event, None)
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"] == "invalid_request"


def test_t25_secret_in_the_url_is_refused(http, world):
    c1 = world.clients["C1"]
    form = "&".join(f"{k}={v}" for k, v in _code_form(c1, world.issue_code(c1)).items())
    response = http.post(f"/token?client_id={c1.client_id}&client_secret={c1.secret}", headers=FORM, body=form)
    assert_error(response, 400, "invalid_request")


def test_t26_secret_comparison_is_constant_time(world, aws, monkeypatch):
    compared: list[tuple[str, str]] = []
    original = client_rules.digests_equal

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return original(a, b)

    monkeypatch.setattr(client_rules, "digests_equal", spy)
    c1 = world.clients["C1"]
    credentials = client_rules.client_credentials(basic(c1.client_id, c1.secret)["Authorization"], {})
    assert client_rules.authenticate(aws.clients, credentials, clock.now(), CLIENT_LIMITS)[0].client_id == c1.client_id
    assert compared and all(len(a) == len(b) == 64 for a, b in compared)  # fixed-length SHA-256 digests


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_t26_only_digests_of_secrets_are_stored(world, aws):
    import boto3

    items = boto3.resource("dynamodb").Table(aws.settings.table_name).scan()["Items"]
    stored = json.dumps(items, default=str)
    for client in world.clients.values():
        if client.secret:
            assert client.secret not in stored


def test_t27_guessing_the_secret_is_throttled(http, world, aws, monkeypatch):
    freeze_clock(monkeypatch)  # the counter's window is a wall-clock minute: never straddle two
    c1 = world.clients["C1"]
    form = {"grant_type": "client_credentials"}
    limit = aws.settings.client_auth_max_failures
    statuses = [post_token(http, form, basic(c1.client_id, f"guess-{i}")).status_code for i in range(limit + 1)]
    assert statuses[:limit] == [401] * limit
    throttled = post_token(http, form, basic(c1.client_id, "guess-last"))
    assert_error(throttled, 429, "invalid_client")  # a failed client authentication (RFC 6749 §5.2), in a 429
    assert throttled.headers["Retry-After"]


def test_t28_rotated_secret_stops_at_once(http, world, aws):
    c1 = world.clients["C1"]
    record = aws.store.get_client(c1.client_id)
    new_secret = rotate_secret(record, clock.now(), overlap_seconds=0)
    save_client(aws.store, record)
    aws.clients.forget(c1.client_id)
    code = world.issue_code(c1)
    assert_error(exchange(http, c1, code), 401, "invalid_client")
    c1.secret = new_secret
    tokens_of(exchange(http, c1, code))


def test_t28_disabled_client_cannot_refresh(http, world, aws):
    c1 = world.clients["C1"]
    tokens = tokens_of(exchange(http, c1, world.issue_code(c1)))
    record = aws.store.get_client(c1.client_id)
    record.disabled = True
    save_client(aws.store, record)
    aws.clients.forget(c1.client_id)
    assert_error(refresh(http, c1, tokens["refresh_token"]), 401, "invalid_client")
