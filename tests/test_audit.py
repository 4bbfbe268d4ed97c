"""Audit events (issue 11): one JSON line per security event, names and fields from the catalogue,
no secret in any of them; and the CloudWatch metric filters and alarms that watch the dangerous ones."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from chalicelib import audit, cli, clock
from tests.authorize_support import (
    EMAIL,
    PASSWORD,
    Browser,
    add_fixture_clients,
    add_user,
    az,
    consent_page,
    decide,
    sign_in,
)
from tests.developer_support import created_credentials
from tests.developer_support import sign_in as developer_session
from tests.token_helpers import V, basic, post_token

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "infra"))
import template as infra  # noqa: E402

pytestmark = pytest.mark.store("memory")


@pytest.fixture
def events(caplog):
    caplog.set_level(logging.INFO, logger="clipron.audit")

    def collected() -> list[dict]:
        lines = [r.getMessage() for r in caplog.records if r.name == "clipron.audit"]
        return [json.loads(line) for line in lines]  # every line is one JSON object

    return collected


def names(events) -> list[str]:
    return [event["audit"] for event in events()]


def test_the_code_flow_leaves_one_event_per_security_step_and_no_secret(aws, http, events):
    add_fixture_clients(aws.store)
    user = add_user(aws.store)
    browser = Browser(http)
    sign_in(browser, password="wrong password")
    assert sign_in(browser).status_code == 200
    allowed = decide(browser, consent_page(browser, az()), "allow")
    code = dict(p.split("=", 1) for p in allowed.headers["Location"].split("?", 1)[1].split("&"))["code"]
    auth = basic("c1", "c1-secret")
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://c1.example/cb",
                "code_verifier": V}
    tokens = json.loads(post_token(http, exchange, auth).body)
    rotated = json.loads(post_token(http, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                                    auth).body)
    clock.travel(aws.settings.refresh_replay_seconds + 1)  # past the window that replays a committed rotation
    post_token(http, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth)  # reuse
    assert post_token(http, exchange, auth).status_code == 400  # the code again
    post_token(http, {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}, auth)
    http.post("/revoke", headers={"Content-Type": "application/x-www-form-urlencoded", **auth},
              body=f"token={rotated['refresh_token']}".encode())

    seen = events()
    assert [e["audit"] for e in seen] == [
        "login.failed", "login.succeeded", "consent.granted", "code.issued", "code.redeemed", "refresh.rotated",
        "refresh.reuse_detected", "code.replayed", "token.revoked",
    ]
    assert seen[0] == {"audit": "login.failed", "ts": seen[0]["ts"], "user_id": user.user_id, "reason": "password"}
    grant_ids = {e.get("grant_id") for e in seen if "grant_id" in e}
    assert len(grant_ids) == 1 and all(e.get("client_id") in (None, "c1") for e in seen)
    text = json.dumps(seen)
    for secret in (code, tokens["refresh_token"], tokens["access_token"], rotated["refresh_token"], PASSWORD,
                   "c1-secret", EMAIL, *browser.cookies.values()):
        assert secret not in text


def test_applications_and_consents_leave_events(aws, http, events):
    dev = developer_session(aws, http)
    client_id, _ = created_credentials(dev.create_app("Audited"))
    dev.submit(f"/developer/apps/{client_id}", f"/developer/apps/{client_id}",
               {"name": "Audited 2", "redirect_uris": "https://app.example/callback", "scope.read:analysis": "on"})
    dev.submit(f"/developer/apps/{client_id}", f"/developer/apps/{client_id}/rotate", {"confirm": "yes"})
    dev.submit(f"/developer/apps/{client_id}", f"/developer/apps/{client_id}/delete", {"confirm": "yes"})
    assert names(events) == ["client.created", "client.updated", "client.secret_rotated", "client.deleted"]
    assert all(e["client_id"] == client_id and e["via"] == "developer" for e in events())
    assert events()[0]["owner_id"] == dev.user_id


@pytest.mark.store("dynamo")  # counts/reads real DynamoDB items
def test_operator_commands_leave_events(aws, events, capsys):
    assert cli.main(["create-client", "--name", "Ops", "--redirect-uri", "https://ops.example/cb"]) == 0
    assert cli.main(["rotate-keys"]) == 0
    created, rotated = events()
    assert created["audit"] == "client.created" and created["via"] == "operator"
    assert rotated["audit"] == "keys.rotated" and rotated["via"] == "operator" and rotated["current"]


def test_a_server_error_is_an_event(aws, http, events, monkeypatch):
    from chalicelib.web import wellknown

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(wellknown, "authorization_server_metadata", broken)
    assert http.get("/.well-known/oauth-authorization-server").status_code == 500
    assert events()[-1]["audit"] == "http.server_error" and events()[-1]["status"] == 500


def test_emit_refuses_names_and_fields_outside_the_catalogue():
    with pytest.raises(ValueError):
        audit.emit("login.maybe")
    with pytest.raises(ValueError):
        audit.emit("login.failed", password="x")


# --- CloudWatch: metric filters and alarms ------------------------------------------------------------


@pytest.mark.parametrize("stage", ("dev", "prod"))
def test_the_template_watches_reuse_throttling_and_server_errors(stage):
    resources = infra.merge_template(stage)["Resources"]
    filters = {r["Properties"]["MetricTransformations"][0]["MetricName"]: r["Properties"]
               for r in resources.values() if r.get("Type") == "AWS::Logs::MetricFilter"}
    alarms = [r["Properties"] for r in resources.values() if r.get("Type") == "AWS::CloudWatch::Alarm"]
    watched = {alarm["MetricName"] for alarm in alarms}
    assert {"RefreshReuseDetected", "ThrottledAuthentications", "ServerErrors"} <= watched <= set(filters)
    for metric, event_names in (("RefreshReuseDetected", ["refresh.reuse_detected"]),
                                ("ThrottledAuthentications", list(audit.THROTTLE_EVENTS)),
                                ("ServerErrors", ["http.server_error"])):
        pattern = filters[metric]["FilterPattern"]
        assert all(f'"{name}"' in pattern for name in event_names), pattern
        assert all(name in audit.EVENTS for name in event_names)
        assert filters[metric]["LogGroupName"] == {"Ref": "ApiHandlerLogGroup"}
    assert all(alarm["AlarmActions"] == [{"Ref": "SecurityAlarmTopic"}] for alarm in alarms)
