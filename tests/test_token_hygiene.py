"""Request hygiene at POST /token (T-29, T-31..T-41) and storage faults (F-01, F-02)."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from chalicelib.crypto.secrets import digest
from tests.store_support import list_client_grant_ids
from tests.token_helpers import (
    FORM,
    V,
    assert_error,
    aws_calls,
    basic,
    exchange,
    fault,
    post_token,
    tokens_of,
)

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call


def _form(client, code, **extra):
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
            "code_verifier": V, **extra}


def _code_unused(world, code) -> bool:
    return world.store.get_code(digest(code)).used_at is None


# -- T-29 error-code matrix --

def test_t29_unknown_client(http, world):
    c1 = world.clients["C1"]
    assert_error(post_token(http, _form(c1, world.issue_code(c1)), basic("app_unknown", "x")), 401, "invalid_client")


@pytest.mark.parametrize("case", ["bad_code", "expired_code", "foreign_code", "bad_verifier", "bad_redirect"])
def test_t29_invalid_grant_cases(http, world, case):
    from chalicelib import clock

    c1, c2 = world.clients["C1"], world.clients["C2"]
    code = world.issue_code(c2 if case == "foreign_code" else c1)
    if case == "bad_code":
        code = "A" * 43
    overrides = {"bad_verifier": {"code_verifier": "b" * 43},
                 "bad_redirect": {"redirect_uri": "https://evil.example/cb"}}.get(case, {})
    if case == "expired_code":
        clock.travel(61)
    assert_error(exchange(http, c1, code, **overrides), 400, "invalid_grant")


@pytest.mark.parametrize("grant_type", ["password", "implicit", "foo"])
def test_t29_unsupported_grant_types(http, world, grant_type):
    c1 = world.clients["C1"]
    form = {"grant_type": grant_type, "username": "u", "password": "p"}
    assert_error(post_token(http, form, basic(c1.client_id, c1.secret)), 400, "unsupported_grant_type")


def test_t29_grant_the_client_may_not_use(http, world):
    c1, cc1 = world.clients["C1"], world.clients["CC1"]
    assert_error(post_token(http, {"grant_type": "client_credentials"}, basic(c1.client_id, c1.secret)),
                 400, "unauthorized_client")
    code = world.issue_code(c1)
    assert_error(post_token(http, _form(c1, code), basic(cc1.client_id, cc1.secret)), 400, "unauthorized_client")


@pytest.mark.parametrize("missing", ["grant_type", "code"])
def test_t29_missing_parameters(http, world, missing):
    c1 = world.clients["C1"]
    form = _form(c1, world.issue_code(c1))
    del form[missing]
    assert_error(post_token(http, form, basic(c1.client_id, c1.secret)), 400, "invalid_request")


# -- T-31..T-38 --

@pytest.mark.parametrize("name", ["code", "grant_type", "code_verifier", "client_id", "redirect_uri", "scope"])
def test_t31_duplicate_parameters_are_refused_and_the_code_is_kept(http, world, name):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    pairs = list(_form(c1, code, client_id=c1.client_id, scope="read:analysis").items())
    pairs.append((name, dict(pairs)[name]))
    assert_error(post_token(http, pairs, basic(c1.client_id, c1.secret)), 400, "invalid_request")
    assert _code_unused(world, code)


def test_t32_query_parameters_are_never_merged_with_the_body(http, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    body = f"grant_type=authorization_code&code_verifier={V}&redirect_uri={c1.redirect_uris[0]}"
    response = http.post(f"/token?code={code}", headers={**FORM, **basic(c1.client_id, c1.secret)}, body=body)
    assert_error(response, 400, "invalid_request")
    assert _code_unused(world, code)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "text/plain", "multipart/form-data; boundary=x", "application/xml", "image/png", None],
)
def test_t33_only_form_bodies_are_accepted(http, world, content_type):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    body = json.dumps(_form(c1, code)) if content_type == "application/json" else \
        "&".join(f"{k}={v}" for k, v in _form(c1, code).items())
    headers = basic(c1.client_id, c1.secret) | ({"Content-Type": content_type} if content_type else {})
    assert_error(http.post("/token", headers=headers, body=body), 400, "invalid_request")
    assert _code_unused(world, code)


def test_t33_form_with_charset_is_accepted(http, world):
    c1 = world.clients["C1"]
    body = "&".join(f"{k}={v}" for k, v in _form(c1, world.issue_code(c1)).items())
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8", **basic(c1.client_id, c1.secret)}
    tokens_of(http.post("/token", headers=headers, body=body))


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_t34_other_methods_get_405_and_no_token(http, world, method):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    body = "&".join(f"{k}={v}" for k, v in _form(c1, code).items())
    response = http.request(method, "/token", headers={**FORM, **basic(c1.client_id, c1.secret)},
                            body=body.encode() if method != "GET" else b"")
    assert_error(response, 405, "invalid_request")
    assert response.headers["Allow"] == "POST"
    assert _code_unused(world, code)


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
@pytest.mark.parametrize(
    "body, status",
    [
        ("grant_type=authorization_code&code=" + "x" * (64 * 1024), 413),
        ("a=" + "x" * (1024 * 1024), 413),
        ("a=" + "x" * int(5.9 * 1024 * 1024), 413),
        ("grant_type=authorization_code&code_verifier=" + "v" * (8 * 1024), 400),
        ("&".join(f"p{i}=1" for i in range(500)), 400),
    ],
)
def test_t35_oversized_input_is_refused_before_any_aws_call(http, world, aws, body, status):
    c1 = world.clients["C1"]
    with aws_calls(aws) as calls:
        response = post_token(http, body, basic(c1.client_id, c1.secret))
    assert_error(response, status, "invalid_request")
    assert calls == []


@pytest.mark.parametrize(
    "raw",
    [
        b"grant_type=authorization_code&code=%zz",
        b"grant_type=authorization_code&code=abc%00",
        b"grant_type=authorization_code&code=%ED%A0%80",
        b"grant_type=authorization_code&code=\xff\xfe",
        b"\xef\xbb\xbfgrant_type=authorization_code&code=abc",
        b"grant_type=authorization_code;code=abc",
    ],
)
def test_t36_encoding_abuse_is_a_400_never_a_500(http, world, raw):
    c1 = world.clients["C1"]
    response = http.post("/token", headers={**FORM, **basic(c1.client_id, c1.secret)}, body=raw)
    assert response.status_code == 400, response.body
    assert json.loads(response.body)["error"] in ("invalid_request", "invalid_grant", "unsupported_grant_type")


def test_t36_plus_and_percent_20_both_mean_a_space_in_scope(http, world):
    c1 = world.clients["C1"]
    for separator in ("+", "%20"):
        body = "&".join(f"{k}={v}" for k, v in _form(c1, world.issue_code(c1)).items())
        body += f"&scope=read:analysis{separator}write:analysis"
        tokens = tokens_of(post_token(http, body, basic(c1.client_id, c1.secret)))
        assert tokens["scope"] == "read:analysis write:analysis"


def test_t37_empty_scope_means_the_granted_scope(http, world):
    c1 = world.clients["C1"]
    tokens = tokens_of(exchange(http, c1, world.issue_code(c1), scope=""))
    assert tokens["scope"] == "read:analysis write:analysis"


def test_t38_unknown_parameters_are_ignored(http, world):
    c1 = world.clients["C1"]
    tokens_of(exchange(http, c1, world.issue_code(c1), foo="bar"))


_JERR_CHARS = re.compile(r'^[\x20\x21\x23-\x5b\x5d-\x7e]*$')


def test_t39_error_bodies_are_clean_and_never_echo_secrets(http, world):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    secret_verifier = "S3cretVerifier" + "z" * 40
    responses = [
        post_token(http, _form(c1, code, code_verifier=secret_verifier), basic(c1.client_id, c1.secret + "x")),
        post_token(http, _form(c1, code, code_verifier=secret_verifier), basic(c1.client_id, c1.secret)),
        post_token(http, _form(c1, code + "\r\n\t<script>"), basic(c1.client_id, c1.secret)),
        post_token(http, _form(c1, code, scope="read:analysis\tadmin"), basic(c1.client_id, c1.secret)),
        post_token(http, {"grant_type": "x\r\ny"}, basic(c1.client_id, c1.secret)),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500
        payload = json.loads(response.body)
        for value in payload.values():
            assert _JERR_CHARS.match(value), value
        text = response.body.decode()
        for secret in (code, c1.secret, secret_verifier, "Traceback"):
            assert secret not in text


def test_t40_token_endpoint_cors_never_carries_credentials(http, world):
    """Browser apps and agents may call /token (issue 10), but never with the user's cookies: the origin
    is the wildcard, which browsers refuse to combine with credentials, and no Allow-Credentials."""
    c1 = world.clients["C1"]
    response = post_token(
        http, _form(c1, world.issue_code(c1)), {**basic(c1.client_id, c1.secret), "Origin": "https://evil.example"}
    )
    tokens_of(response)
    headers = {name.lower(): value for name, value in response.headers.items()}
    assert headers.get("access-control-allow-origin") == "*"
    assert "access-control-allow-credentials" not in headers


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_t41_token_quality_and_only_hashes_at_rest(http, world, aws):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    tokens = tokens_of(exchange(http, c1, code))
    claims = aws.access_tokens.verify(tokens["access_token"], aws.settings.api_audience)
    assert len(claims.jti) >= 22  # 128 bits, base64url
    assert len(tokens["refresh_token"]) >= 43 and "." not in tokens["refresh_token"]  # 256-bit, opaque
    items = json.dumps(boto3.resource("dynamodb").Table(aws.settings.table_name).scan()["Items"], default=str)
    for secret in (code, tokens["refresh_token"], tokens["access_token"]):
        assert secret not in items
    assert digest(code) in items and digest(tokens["refresh_token"]) in items


# -- F-01, F-02: faults --

@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_f01_throttled_code_read_is_a_503_and_the_code_survives(http, world, aws):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    with fault(aws, "GetItem", "ProvisionedThroughputExceededException") as hits:
        response = exchange(http, c1, code)
    assert hits
    assert_error(response, 503, "temporarily_unavailable")
    assert response.headers["Retry-After"]
    assert _code_unused(world, code)
    tokens_of(exchange(http, c1, code))


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_f02_condition_failure_in_the_transaction_is_invalid_grant(http, world, aws):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    with fault(aws, "TransactWriteItems", "TransactionCanceledException",
               reasons=["ConditionalCheckFailed", "None", "None", "None", "None"]):
        assert_error(exchange(http, c1, code), 400, "invalid_grant")


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
@pytest.mark.parametrize("code_name", ["ThrottlingException", "InternalServerError"])
def test_f02_failed_transaction_is_a_503_and_leaves_nothing_issued(http, world, aws, code_name):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    with fault(aws, "TransactWriteItems", code_name):
        response = exchange(http, c1, code)
    assert_error(response, 503, "temporarily_unavailable")
    assert "access_token" not in response.body.decode()
    assert _code_unused(world, code)
    assert list_client_grant_ids(aws.store, c1.client_id) == []
    kinds = {item["kind"] for item in boto3.resource("dynamodb").Table(aws.settings.table_name).scan()["Items"]}
    assert "refresh" not in kinds and "grant" not in kinds
    tokens_of(exchange(http, c1, code))  # a later retry succeeds


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_f07_token_paths_read_with_consistent_reads(http, world, aws):
    from chalicelib.store.dynamo import shared_connection

    reads: list[dict] = []

    def record(model, params, **_):
        if model.name == "GetItem":
            reads.append(params)
        if model.name == "BatchGetItem":  # the code or refresh token with the throttle counters
            reads.extend(params["RequestItems"].values())

    events = shared_connection().client.meta.events
    events.register("before-parameter-build.dynamodb.GetItem", record)
    events.register("before-parameter-build.dynamodb.BatchGetItem", record)
    try:
        c1 = world.clients["C1"]
        tokens = tokens_of(exchange(http, c1, world.issue_code(c1)))
        tokens_of(post_token(http, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                             basic(c1.client_id, c1.secret)))
    finally:
        events.unregister("before-parameter-build.dynamodb.GetItem", record)
        events.unregister("before-parameter-build.dynamodb.BatchGetItem", record)
    assert len(reads) >= 2 and all(params.get("ConsistentRead") is True for params in reads)
