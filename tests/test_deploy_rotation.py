"""Signing-key rotation through the scheduled Lambda function, and the logs the deployed functions write."""

import contextlib
import json
import logging

import jwt
import pytest
from chalice.test import Client

from app import app
from chalicelib import clock, jobs
from chalicelib.crypto.keyring import JWKS_CACHE_MARGIN_SECONDS

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


@pytest.fixture
def lambdas(aws):
    clock.travel(jobs.MIN_NEXT_KEY_AGE_SECONDS)  # the ring provisioned a `next` key a day ago
    with Client(app, stage_name="local") as client:
        yield client


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.getMessage()))


@contextlib.contextmanager
def lambda_root_logger():
    """Like the Lambda Python runtime: one handler on the root logger, the root level at WARNING."""
    root, handler = logging.getLogger(), Collected()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _scheduled(client) -> dict:
    """Invoke the rotation the way EventBridge does (a scheduled event) and return its result."""
    event = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, ["arn:aws:events:rule/rotate"])
    return client.lambda_.invoke(jobs.ROTATION_FUNCTION, event).payload


def _jwks(client) -> dict[str, dict]:
    response = client.http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    return {key["kid"]: key for key in json.loads(response.body)["keys"]}


def _issue(aws) -> str:
    audience = aws.settings.api_audience
    return aws.access_tokens.issue(sub="usr_r", client_id="app_r", scope="read:analysis", audience=audience,
                                   grant_id="grt_r").token


def test_the_rotation_is_a_scheduled_function_of_the_app():
    (schedule,) = [s for s in app.event_sources if s.name == jobs.ROTATION_FUNCTION]
    assert schedule.schedule_expression.to_string() == f"rate({jobs.ROTATION_DAYS} days)"
    assert schedule.handler_string == "chalicelib.jobs.rotate_signing_keys"


def test_scheduled_rotation_keeps_old_tokens_valid_and_publishes_old_and_new(lambdas, aws):
    before = _issue(aws)
    old_kid = jwt.get_unverified_header(before)["kid"]
    next_kid = aws.keyring.jwks()["keys"][1]["kid"]
    with lambda_root_logger() as lines:
        result = _scheduled(lambdas)

    assert result["current"] == next_kid and result["retired"] == [old_kid]
    published = _jwks(lambdas)
    assert {old_kid, result["current"], result["next"]} == set(published)
    assert all(not PRIVATE_MEMBERS & set(key) for key in published.values())
    aws.keyring.invalidate()  # the API function's cache expires (KEY_CACHE_SECONDS); no redeploy needed
    after = _issue(aws)
    assert jwt.get_unverified_header(after)["kid"] == result["current"]
    assert aws.access_tokens.verify(before, aws.settings.api_audience).sub == "usr_r"
    assert aws.access_tokens.verify(after, aws.settings.api_audience).sub == "usr_r"

    (line,) = [message for name, message in lines if name == "clipron.oauth.jobs"]
    assert json.loads(line) == {"job": "rotate_signing_keys", **result}
    assert not any("PRIVATE" in message or "ciphertext" in message for _, message in lines)


def test_a_duplicate_delivery_does_not_promote_an_unseen_key(lambdas, aws):
    first = _scheduled(lambdas)
    published = set(_jwks(lambdas))
    assert _scheduled(lambdas) == {"skipped": "the next key was published less than a day ago"}
    aws.keyring.invalidate()
    assert set(_jwks(lambdas)) == published
    assert aws.keyring.current().kid == first["current"]


def test_a_later_rotation_drops_keys_retired_longer_than_tokens_live(lambdas, aws):
    assert jobs.MIN_NEXT_KEY_AGE_SECONDS > aws.settings.access_token_seconds + JWKS_CACHE_MARGIN_SECONDS
    old_kid = jwt.get_unverified_header(_issue(aws))["kid"]
    _scheduled(lambdas)
    clock.travel(jobs.MIN_NEXT_KEY_AGE_SECONDS)
    result = _scheduled(lambdas)
    assert result["removed"] == [old_kid]
    aws.keyring.invalidate()
    assert old_kid not in _jwks(lambdas) and len(_jwks(lambdas)) == 3  # current, next, just retired


def test_access_log_line_reaches_a_warning_level_root_logger_and_holds_no_secret(lambdas):
    secret = "s3cr3t-refresh-token-value"
    with lambda_root_logger() as lines:
        lambdas.http.get(f"/.well-known/jwks.json?token={secret}", headers={"Authorization": f"Bearer {secret}"})
    (line,) = [message for name, message in lines if name == "clipron.oauth.access"]
    record = json.loads(line)
    assert record["status"] == 200 and record["route"] == "/.well-known/jwks.json" and "request_id" in record
    assert not any(secret in message for _, message in lines)
