"""Reliability and faults (SECURITY-TESTS.md group F): KMS and DynamoDB outages, timeouts, skew,
warm caches, unexpected exceptions, a throttling storm and secrets in logs (F-10..F-13, F-16, F-18,
F-19, F-21, F-22; F-01, F-02, F-05..F-09 live beside the endpoints they test)."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from chalicelib import clock, wiring
from chalicelib.crypto.secrets import digest
from chalicelib.oauth.tokens import LEEWAY_SECONDS
from chalicelib.records import ClientSecret
from chalicelib.store.dynamo import shared_connection
from tests.store_support import save_client
from tests.token_helpers import (
    CH,
    FORM,
    V,
    assert_error,
    basic,
    body,
    exchange,
    fault,
    freeze_clock,
    post_token,
    refresh,
    tokens_of,
)

ROOT = Path(__file__).resolve().parent.parent
API_GATEWAY_LIMIT_SECONDS = 29
TRACE_MARKERS = ("Traceback", "RuntimeError", 'File "', "chalicelib")


# -- helpers ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def ddb_raising(error: Exception, operation: str = "*", event: str = "before-call") -> Iterator[list[str]]:
    """Raise a botocore exception on DynamoDB calls (`*`: every operation)."""
    hits: list[str] = []

    def fail(model=None, **_: Any) -> None:
        hits.append(getattr(model, "name", "send"))
        raise error

    events = shared_connection().client.meta.events
    name = f"{event}.dynamodb.{operation}" if operation != "*" else f"{event}.dynamodb"
    events.register_first(name, fail)
    try:
        yield hits
    finally:
        events.unregister(name, fail)


def authorize_path(client, **values: str) -> str:
    from urllib.parse import urlencode

    params = {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0],
              "scope": "read:analysis", "state": "S1", "code_challenge": CH, "code_challenge_method": "S256",
              **values}
    return "/authorize?" + urlencode(params)


def location_params(response) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


def assert_error_page(response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.body[:300])
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-store"
    assert "Location" not in response.headers
    assert not any(marker in response.body.decode() for marker in TRACE_MARKERS)


def signed_in(services, world) -> dict[str, str]:
    session_id, _ = services.sessions.start(world.user_id)
    return {"Cookie": f"clipron_session={session_id}"}


def code_unused(world, code: str) -> bool:
    return world.store.get_code(digest(code)).used_at is None


# -- F-11, F-13: KMS ---------------------------------------------------------------------------------

def test_f11_the_app_imports_without_reaching_kms_or_dynamodb():
    """Cold start: importing app.py makes no AWS call (endpoints point at a closed port)."""
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1", "STAGE": "local", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", "import app; print(app.app.app_name)"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "clipron-oauth"


def test_f11_kms_down_at_cold_start_is_a_503_and_recovers(aws, http, world):
    c1 = world.clients["C1"]
    world.issue_code(c1)  # records the consent, so /authorize can answer with a code at once
    wiring.reset()  # a fresh process: no decrypted signing key, no cached client
    svc = wiring.services()
    cookie = signed_in(svc, world)
    with fault(svc, "Decrypt", "KMSInternalException", service="kms") as hits:
        issued = http.get(authorize_path(c1), headers=cookie)  # the front channel needs no KMS
        assert issued.status_code == 302, issued.body[:300]
        code = location_params(issued)["code"]
        response = exchange(http, c1, code)
        jwks = http.get("/.well-known/jwks.json")  # F-14: served from the table, no KMS
        again = exchange(http, c1, code)  # the failure is not cached: KMS is asked again
    assert len(hits) == 2
    for failed in (response, again):
        assert_error(failed, 503, "temporarily_unavailable")
        assert failed.headers["Retry-After"]
        assert "access_token" not in failed.body.decode() and "refresh_token" not in failed.body.decode()
    assert jwks.status_code == 200 and body(jwks)["keys"]
    assert svc.keyring._private == {}  # no fallback key was loaded
    assert code_unused(world, code)
    tokens = tokens_of(exchange(http, c1, code))  # KMS is back: the same code works
    import jwt

    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "RS256" and header["kid"] == svc.keyring.current().kid
    svc.access_tokens.verify(tokens["access_token"], svc.settings.api_audience)


@pytest.mark.parametrize("code", ["AccessDeniedException", "KMSInvalidStateException", "DisabledException"])
def test_f13_kms_refusal_is_a_5xx_that_names_no_key(aws, http, world, caplog, code):
    caplog.set_level(logging.DEBUG)
    c1 = world.clients["C1"]
    code_value = world.issue_code(c1)
    wiring.reset()
    svc = wiring.services()
    key = boto3.client("kms").describe_key(KeyId=svc.settings.kms_key_id)["KeyMetadata"]
    caplog.clear()  # from here on: what the server logs
    message = f"User: arn:aws:sts::123456789012:assumed-role/x is not authorized to use {key['Arn']}"
    with fault(svc, "Decrypt", code, service="kms", message=message):
        response = exchange(http, c1, code_value)
    assert 500 <= response.status_code < 600
    assert_error(response, response.status_code, "temporarily_unavailable")
    logs = "\n".join(record.getMessage() for record in caplog.records)
    assert code in logs  # the operator learns what failed
    for text in (response.body.decode(), logs):
        for secret in (key["Arn"], key["KeyId"], svc.settings.kms_key_id, "arn:aws:"):
            assert secret not in text


# -- F-12: timeouts ----------------------------------------------------------------------------------

def worst_call_seconds(client) -> float:
    """Connect + read timeout per attempt, times attempts, plus botocore's largest backoffs between them."""
    config = client.meta.config
    attempts = config.retries["total_max_attempts"]
    backoff = sum(min(2 ** i, 20) for i in range(attempts - 1))  # standard mode: rand(0,1) * min(2^i, 20)
    return attempts * (config.connect_timeout + config.read_timeout) + backoff


def test_f12_each_aws_call_gives_up_before_the_lambda_and_api_gateway_time_out(aws):
    from chalicelib.settings import AWS_CALL_BUDGET_SECONDS, load_settings

    defaults = load_settings({"AWS_REGION": "us-east-1"})
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    lambda_timeouts = [stage["lambda_timeout"] for stage in config["stages"].values() if "lambda_timeout" in stage]
    assert lambda_timeouts and all(t < API_GATEWAY_LIMIT_SECONDS for t in lambda_timeouts)
    assert AWS_CALL_BUDGET_SECONDS < min(lambda_timeouts)  # what Settings enforces fits the deployed functions
    for client in (shared_connection().client, aws.kms()):
        config_used = client.meta.config
        assert config_used.connect_timeout == defaults.ddb_connect_timeout_seconds
        assert config_used.read_timeout == defaults.ddb_read_timeout_seconds
        assert config_used.retries["total_max_attempts"] == 1 + defaults.ddb_max_retries
        assert worst_call_seconds(client) < min(lambda_timeouts)


@pytest.mark.parametrize("environ", [{"DDB_READ_TIMEOUT_SECONDS": "10", "DDB_MAX_RETRIES": "3"},
                                     {"DDB_CONNECT_TIMEOUT_SECONDS": "10", "DDB_READ_TIMEOUT_SECONDS": "10"}])
def test_f12_settings_refuse_timeouts_that_would_outlast_the_lambda(environ):
    from chalicelib.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="DDB_READ_TIMEOUT_SECONDS"):
        load_settings({"AWS_REGION": "us-east-1", **environ})
    load_settings({"AWS_REGION": "us-east-1", "DDB_CONNECT_TIMEOUT_SECONDS": "1", "DDB_READ_TIMEOUT_SECONDS": "5"})


def test_f12_retries_are_bounded_and_end_in_a_503(http, world, aws, monkeypatch):
    """A read that times out on every attempt: botocore retries `DDB_MAX_RETRIES` times, then 503."""
    from botocore.retries.standard import ExponentialBackoff

    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)  # no real sleeping
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    timeout = ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
    with ddb_raising(timeout, "GetItem", event="before-send") as sends:
        response = exchange(http, c1, code)
    assert_error(response, 503, "temporarily_unavailable")
    assert len(sends) == 1 + aws.settings.ddb_max_retries
    assert code_unused(world, code)


@pytest.mark.parametrize("error", [ReadTimeoutError(endpoint_url="https://dynamodb"),
                                   EndpointConnectionError(endpoint_url="https://dynamodb")],
                         ids=["read-timeout", "no-connection"])
def test_f12_an_unreachable_dynamodb_is_a_controlled_503_everywhere(http, world, aws, error):
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    cookie = signed_in(aws, world)
    with ddb_raising(error):
        token = exchange(http, c1, code)
        introspection = http.post("/introspect", body=b"token=x", headers={**FORM, **basic(c1.client_id, c1.secret)})
        authorize = http.get(authorize_path(c1), headers=cookie)
        login = http.post("/login", body=b"email=a%40b.c&password=x&csrf_token=x", headers={**FORM, **cookie})
        apps = http.get("/developer/apps", headers=cookie)
    for response in (token, introspection):
        assert_error(response, 503, "temporarily_unavailable")
        assert response.headers["Retry-After"]
    for response in (authorize, apps):
        assert_error_page(response, 503)
    assert login.status_code in (403, 503)  # the CSRF check may refuse it before any read
    assert code_unused(world, code)


# -- F-16: /authorize after the client was validated -------------------------------------------------

@pytest.mark.parametrize("signed_in_first", [False, True], ids=["parking-the-request", "issuing-the-code"])
def test_f16_a_store_failure_after_validation_redirects_with_state_and_iss(http, world, aws, signed_in_first):
    c1 = world.clients["C1"]
    # an operator-verified client: its redirect URI is trusted before sign-in (RFC 9700 §4.11.2)
    aws.store.update_client(c1.client_id, lambda record: setattr(record, "verified", True))
    world.issue_code(c1)  # remembered consent: a signed-in user gets a code without a page
    record = world.store.get_client(c1.client_id)
    record.verified = True  # errors before sign-in go to the redirect URI of verified apps only (RFC 9700 §4.11.2)
    save_client(world.store, record)
    aws.clients.forget(c1.client_id)
    cookie = signed_in(aws, world) if signed_in_first else {}
    with fault(aws, "PutItem", "ProvisionedThroughputExceededException") as hits:
        response = http.get(authorize_path(c1), headers=cookie)
    assert hits
    assert response.status_code == 302, response.body[:300]
    assert response.headers["Location"].startswith(c1.redirect_uris[0] + "?")
    params = location_params(response)
    assert params["error"] in ("temporarily_unavailable", "server_error")
    assert params["state"] == "S1" and params["iss"] == aws.settings.issuer
    assert "code" not in params


def test_f16_a_store_failure_after_consent_redirects_with_state_and_iss(http, world, aws):
    from tests.authorize_support import Browser, hidden

    c1 = world.clients["C1"]
    browser = Browser(http)
    browser.cookies["clipron_session"] = signed_in(aws, world)["Cookie"].split("=", 1)[1]
    page = browser.follow(browser.get(authorize_path(c1, scope="read:project")))  # not yet consented
    assert page.status_code == 200, page.body[:300]
    form = {"csrf_token": hidden(page, "csrf_token"), "request": hidden(page, "request"), "decision": "allow"}
    with fault(aws, "PutItem", "ThrottlingException"):
        response = browser.post("/consent", form, headers={"Origin": aws.settings.issuer})
    assert response.status_code == 303, response.body[:300]
    params = location_params(response)
    assert params["error"] == "temporarily_unavailable" and params["state"] == "S1"
    assert params["iss"] == aws.settings.issuer and "code" not in params


def test_f16_a_store_failure_before_the_client_is_validated_is_an_error_page(http, world, aws):
    c1 = world.clients["C1"]
    wiring.services().clients.forget(c1.client_id)
    with fault(aws, "GetItem", "ProvisionedThroughputExceededException"):
        response = http.get(authorize_path(c1))
    assert_error_page(response, 503)


# -- F-10: clock skew between instances --------------------------------------------------------------

def test_f10_a_code_redeems_on_an_instance_30_s_ahead_and_its_tokens_verify_on_the_slow_one(
        http, world, aws, monkeypatch):
    freeze_clock(monkeypatch)
    c1 = world.clients["C1"]
    issued_at = clock.now()
    code = world.issue_code(c1)  # instance A, on time
    clock.travel(30)  # instance B, 30 s ahead
    tokens = tokens_of(exchange(http, c1, code))
    clock.travel(-30)  # back on A
    claims = aws.access_tokens.verify(tokens["access_token"], aws.settings.api_audience)
    assert claims.iat <= clock.now() + LEEWAY_SECONDS  # never beyond the leeway in A's future
    assert http.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 200
    # the code's expiry is absolute: B's clock never lengthened its life
    assert world.store.get_code(digest(code)).expires_at == issued_at + 60


def test_f10_a_code_past_its_absolute_expiry_on_the_fast_instance_is_refused(http, world, monkeypatch):
    freeze_clock(monkeypatch)
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    clock.travel(60)  # B's clock says the code has expired: it is refused, whatever A thinks
    assert_error(exchange(http, c1, code), 400, "invalid_grant")


# -- F-21: warm-instance caches ----------------------------------------------------------------------

def _disable(store, record):
    record.disabled = True
    save_client(store, record)


def _delete(store, record):
    store.delete_client(record)


def _rotate(store, record):
    record.secrets = [ClientSecret(digest("a-new-secret-set-elsewhere"))]
    save_client(store, record)


@pytest.mark.parametrize("change", [_disable, _delete, _rotate], ids=["disabled", "deleted", "secret-rotated"])
def test_f21_a_change_made_by_another_instance_reaches_a_warm_one_within_the_cache_ttl(
        http, world, aws, monkeypatch, change):
    freeze_clock(monkeypatch)
    cc1 = world.clients["CC1"]
    form = {"grant_type": "client_credentials"}
    tokens_of(post_token(http, form, basic(cc1.client_id, cc1.secret)))  # the warm instance caches the client
    record = world.store.get_client(cc1.client_id)
    change(world.store, record)  # written by another instance: this one's cache is not told
    ttl = aws.settings.client_cache_seconds
    clock.travel(ttl - 1)
    # README (client_credentials): a change reaches every warm instance within CLIENT_CACHE_SECONDS
    tokens_of(post_token(http, form, basic(cc1.client_id, cc1.secret)))
    clock.travel(2)  # TTL + 1 s
    assert_error(post_token(http, form, basic(cc1.client_id, cc1.secret)), 401, "invalid_client")
    if change is _rotate:
        tokens_of(post_token(http, form, basic(cc1.client_id, "a-new-secret-set-elsewhere")))


def test_f21_a_disabled_client_cannot_start_authorization_on_a_warm_instance_after_the_ttl(
        http, world, aws, monkeypatch):
    freeze_clock(monkeypatch)
    c1 = world.clients["C1"]
    assert http.get(authorize_path(c1)).status_code == 302  # cached
    _disable(world.store, world.store.get_client(c1.client_id))
    clock.travel(aws.settings.client_cache_seconds + 1)
    assert_error_page(http.get(authorize_path(c1)), 400)


def test_f21_a_key_rotated_by_another_instance_verifies_on_a_warm_one(http, world, aws):
    """The warm instance caches the key ring for KEY_CACHE_SECONDS: rotation promotes the key it already
    published as `next`, so tokens signed elsewhere after a rotation verify here at once."""
    c1 = world.clients["C1"]
    old = tokens_of(exchange(http, c1, world.issue_code(c1)))  # the warm instance has loaded its ring
    other = wiring.build(aws.settings)  # another Lambda instance
    other.keyring.rotate()
    issued = other.access_tokens.issue(sub=world.user_id, client_id=c1.client_id, scope="read:analysis",
                                       audience=aws.settings.api_audience, grant_id=None)
    for token in (issued.token, old["access_token"]):  # the new current key, and the retired one
        assert http.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


# -- F-22: unexpected exceptions ---------------------------------------------------------------------

def _boom(*_: Any, **__: Any) -> Any:
    raise RuntimeError("boom: internal detail /var/task/chalicelib")


def test_f22_json_endpoints_answer_500_server_error_without_a_trace(http, world, aws, monkeypatch, caplog):
    from chalicelib.oauth import grants, introspection, revocation
    from chalicelib.oauth.dynamic_registration import Registrar
    from chalicelib.oauth.resource import ResourceGuard

    c1 = world.clients["C1"]
    auth = {**FORM, **basic(c1.client_id, c1.secret)}
    for owner, name in ((grants.TokenEndpoint, "handle"), (introspection.Introspector, "introspect"),
                        (revocation.Revoker, "revoke"), (Registrar, "authorise_registration"),
                        (ResourceGuard, "check")):
        monkeypatch.setattr(owner, name, _boom)
    responses = {
        "token": exchange(http, c1, world.issue_code(c1)),
        "introspect": http.post("/introspect", body=b"token=x", headers=auth),
        "revoke": http.post("/revoke", body=b"token=x", headers=auth),
        "register": http.post("/register", body=b"{}", headers={"Content-Type": "application/json"}),
        "v1": http.get("/v1/me", headers={"Authorization": "Bearer x"}),
    }
    for name, response in responses.items():
        payload = assert_error(response, 500, "server_error")
        assert set(payload) <= {"error", "error_description"}, name
        assert not any(marker in response.body.decode() for marker in TRACE_MARKERS), name
    assert any("unhandled error" in record.getMessage() for record in caplog.records)  # the operator sees it


def test_f22_html_pages_answer_a_500_error_page(http, world, aws, monkeypatch):
    from chalicelib.oauth import accounts
    from chalicelib.oauth.authorize import AuthorizationFlow
    from chalicelib.oauth.developer import Developer

    monkeypatch.setattr(AuthorizationFlow, "start", _boom)
    monkeypatch.setattr(Developer, "apps", _boom)
    monkeypatch.setattr(accounts, "authenticate", _boom)
    c1 = world.clients["C1"]
    cookie = signed_in(aws, world)
    assert_error_page(http.get(authorize_path(c1)), 500)
    assert_error_page(http.get("/developer/apps", headers=cookie), 500)
    login = http.get("/login")
    pre = login.headers["Set-Cookie"][0].split(";")[0] if isinstance(login.headers["Set-Cookie"], list) \
        else login.headers["Set-Cookie"].split(";")[0]
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', login.body.decode()).group(1)
    submitted = http.post("/login", body=f"email=a%40b.c&password=x&csrf_token={token}".encode(),
                          headers={**FORM, "Cookie": pre, "Origin": aws.settings.issuer})
    assert_error_page(submitted, 500)


# -- F-18: a throttling storm ------------------------------------------------------------------------

class Storm:
    """Half the DynamoDB calls fail (seeded, so the run is repeatable): some before the call reaches the
    table, some after it committed and only the answer was lost (an ambiguous commit)."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.active = False
        self.failed = 0

    def _maybe_fail(self, model, stage: str) -> None:
        if self.active and self.random.random() < 0.25:
            self.failed += 1
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": stage}}
            raise ClientError(error, model.name)

    def before(self, model, **_: Any) -> None:
        self._maybe_fail(model, "throttled")

    def after(self, model, **_: Any) -> None:
        self._maybe_fail(model, "the answer was lost")

    @contextlib.contextmanager
    def blowing(self) -> Iterator[None]:
        self.active = True
        try:
            yield
        finally:
            self.active = False


def _until_answered(call, attempts: int = 25) -> list[Any]:
    """A client retrying on 503 as told; returns every response."""
    responses = [call()]
    while responses[-1].status_code == 503 and len(responses) < attempts:
        responses.append(call())
    return responses


def test_f18_a_throttling_storm_leaves_no_half_issued_state(http, world, aws):
    storm = Storm(seed=18)
    events = shared_connection().client.meta.events
    events.register("before-call.dynamodb", storm.before)
    events.register("after-call.dynamodb", storm.after)
    c1 = world.clients["C1"]
    issued: list[dict[str, Any]] = []
    statuses: list[int] = []
    lost: list[str] = []  # codes whose exchange committed but whose answer was lost
    try:
        for _ in range(8):
            code = world.issue_code(c1)
            with storm.blowing():
                answers = _until_answered(lambda: exchange(http, c1, code))
            statuses += [r.status_code for r in answers]
            wins = [body(r) for r in answers if r.status_code == 200]
            assert len(wins) <= 1  # at most one success per code
            if not wins:
                lost += [code] if answers[-1].status_code == 400 else []
                continue
            issued.append(wins[0])
            with storm.blowing():
                answers = _until_answered(lambda: refresh(http, c1, wins[0]["refresh_token"]))
            statuses += [r.status_code for r in answers]
            refreshed = [body(r) for r in answers if r.status_code == 200]
            assert all(r == refreshed[0] for r in refreshed)  # repeats inside the grace: the same answer
            issued += refreshed[:1]
    finally:
        events.unregister("before-call.dynamodb", storm.before)
        events.unregister("after-call.dynamodb", storm.after)
    assert storm.failed >= 5 and 503 in statuses and 200 in statuses
    assert set(statuses) <= {200, 400, 503}, statuses
    for tokens in issued:  # no token left the server without its stored records
        claims = aws.access_tokens.verify(tokens["access_token"], aws.settings.api_audience)
        assert world.store.get_grant(c1.client_id, claims.grant_id) is not None
        stored = world.store.get_refresh_token(digest(tokens["refresh_token"]))
        assert stored is not None and stored.grant_id == claims.grant_id
    items = boto3.resource("dynamodb").Table(aws.settings.table_name).scan()["Items"]
    checked = 0
    for item in items:
        data = json.loads(item["data"]) if isinstance(item["data"], str) else item["data"]
        # no refresh token without its grant, no used code without its grant
        if item["kind"] == "refresh" or (item["kind"] == "code" and item.get("used_at") is not None):
            assert world.store.get_grant(data["client_id"], data["grant_id"]) is not None, item
            checked += 1
    assert checked >= len(issued)
    for code in lost:  # the retry of a committed exchange found the code used: its grant is revoked
        record = world.store.get_code(digest(code))
        assert record.used_at is not None
        assert world.store.get_grant(c1.client_id, record.grant_id).revoked_at is not None


# -- F-19: secrets in logs ---------------------------------------------------------------------------

def test_f19_no_secret_reaches_any_log_during_a_full_flow(http, world, aws, caplog):
    """Every log record of every logger, at DEBUG (botocore's request and response dumps included)."""
    from chalicelib.oauth import accounts
    from chalicelib.records import RegistrationTokenRecord
    from tests.authorize_support import Browser, decide, request_id_of, sign_in
    from tests.developer_support import Browser as SignedInBrowser
    from tests.developer_support import created_credentials

    email, password = "f19@example.com", "a password only the user knows"
    registration_token = "f19-initial-access-token-value"
    user = accounts.create_user(aws.store, email, password, clock.now())
    now = clock.now()
    aws.store.put_registration_token(RegistrationTokenRecord(digest(registration_token), now, now + 3600, "f19"))
    c1 = world.clients["C1"]
    caplog.set_level(logging.DEBUG)

    browser = Browser(http)
    login = browser.get(authorize_path(c1))
    signed = sign_in(browser, email, password, request_id=request_id_of(login.headers["Location"]))
    consent = browser.follow(signed)
    code = location_params(decide(browser, consent, "allow"))["code"]
    session_id = browser.cookies["clipron_session"]
    first = tokens_of(exchange(http, c1, code))
    second = tokens_of(refresh(http, c1, first["refresh_token"]))
    authorization = basic(c1.client_id, c1.secret)
    client_auth = {**FORM, **authorization}
    assert body(http.post("/introspect", body=f"token={second['access_token']}".encode(),
                          headers=client_auth))["active"] is True
    revoked = http.post("/revoke", body=f"token={second['refresh_token']}".encode(), headers=client_auth)
    assert revoked.status_code == 200
    registered = body(http.post("/register", headers={"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {registration_token}"},
                                body=json.dumps({"client_name": "F19", "redirect_uris": ["https://f19.example/cb"]})))
    developer = SignedInBrowser(http, user.user_id, session_id)
    created = developer.create_app(name="F19 dashboard app")
    _, dashboard_secret = created_credentials(created)
    for path in ("/developer/apps", "/account/apps"):
        assert developer.get(path).status_code == 200

    secrets = {
        "code": code, "code_verifier": V, "client secret": c1.secret, "password": password,
        "session id": session_id, "Authorization header": authorization["Authorization"].split(" ", 1)[1],
        "registration token": registration_token, "registered secret": registered["client_secret"],
        "registration access token": registered["registration_access_token"],
        "dashboard secret": dashboard_secret,
        **{f"{name} {i}": tokens[name] for i, tokens in enumerate((first, second))
           for name in ("access_token", "refresh_token")},
    }
    records = list(caplog.records)
    assert not any(b'"Plaintext"' in r.getMessage().encode() for r in records)  # F-13: no KMS data key
    assert len(records) > 100 and any(r.name.startswith("botocore") for r in records)  # DEBUG was on
    for record in records:
        text = record.getMessage() + (record.exc_text or "")
        for name, secret in secrets.items():
            assert secret and secret not in text, f"{name} in a {record.name} log record"
