"""Every AWS action the deployed code performs is granted by the hand-written IAM policies, on exactly our
resources: recorded from the code paths (botocore calls under moto), plus a static check of the store."""

import ast
import json
from fnmatch import fnmatchcase
from pathlib import Path

import botocore.client
import pytest

from chalicelib import clock, jobs
from chalicelib.crypto.secrets import digest, new_token
from chalicelib.provision import POLICY_FILES
from chalicelib.records import (
    AuthorizationRequestRecord,
    ClientRecord,
    ClientSecret,
    CodeRecord,
    CounterSlot,
    GrantRecord,
    RefreshTokenRecord,
    RegistrationTokenRecord,
    SessionRecord,
    UserRecord,
)

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("dev", "prod")
API_POLICY, ROTATION_POLICY = POLICY_FILES  # "policy-{stage}.json", "policy-rotation-{stage}.json"
# items of a TransactWriteItems request -> the IAM action each needs (the call itself is not an IAM action)
TRANSACT_ACTIONS = {
    "Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem",
}


class Recorder:
    """(service, IAM action, table name or None) of every AWS call botocore makes."""

    def __init__(self) -> None:
        self.calls: set[tuple[str, str, str | None]] = set()

    def record(self, service: str, operation: str, params: dict) -> None:
        if service == "dynamodb" and operation == "TransactWriteItems":
            for item in params["TransactItems"]:
                ((kind, body),) = item.items()
                self.calls.add(("dynamodb", TRANSACT_ACTIONS[kind], body["TableName"]))
        elif service == "dynamodb" and operation == "BatchGetItem":
            for table in params["RequestItems"]:
                self.calls.add(("dynamodb", "BatchGetItem", table))
        elif service == "dynamodb" and operation == "TransactGetItems":
            for item in params["TransactItems"]:
                self.calls.add(("dynamodb", "GetItem", item["Get"]["TableName"]))
        else:
            self.calls.add((service, operation, params.get("TableName")))


@pytest.fixture
def recorder(monkeypatch):
    recorder = Recorder()
    original = botocore.client.BaseClient._make_api_call

    def make_api_call(client, operation_name, api_params):
        recorder.record(client.meta.service_model.service_name, operation_name, api_params)
        return original(client, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", make_api_call)
    return recorder


def _policy(pattern: str, stage: str) -> dict:
    return json.loads((ROOT / ".chalice" / pattern.format(stage=stage)).read_text())


def _stage_tables(stage: str) -> dict[str, str]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    env = config["stages"][stage]["environment_variables"]
    return {"OAUTH_TABLE": env["OAUTH_TABLE"], "API_TABLE": env["API_TABLE"]}


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def allowed(policy: dict, action: str, resource: str) -> bool:
    """IAM's Allow matching (wildcards in Action and Resource); our policies have no Deny or conditions."""
    return any(
        statement["Effect"] == "Allow"
        and any(fnmatchcase(action.lower(), a.lower()) for a in _as_list(statement["Action"]))
        and any(fnmatchcase(resource, r) for r in _as_list(statement["Resource"]))
        for statement in policy["Statement"]
    )


def _key_arn(policy: dict) -> str:
    (statement,) = [s for s in policy["Statement"] if s["Sid"] == "SigningKeyEnvelopes"]
    return _as_list(statement["Resource"])[0]


def assert_granted(calls, pattern: str, settings) -> None:
    """Each recorded call, mapped onto the deployed stage's table or key ARN, is allowed by that policy."""
    local_to_variable = {settings.table_name: "OAUTH_TABLE", settings.api_table_name: "API_TABLE"}
    for stage in STAGES:
        policy = _policy(pattern, stage)
        key_arn = _key_arn(policy)
        region, account = key_arn.split(":")[3:5]
        tables = _stage_tables(stage)
        for service, action, table in sorted(calls, key=str):
            if service == "dynamodb":
                resource = f"arn:aws:dynamodb:{region}:{account}:table/{tables[local_to_variable[table]]}"
            else:
                assert service == "kms", f"unexpected AWS service {service}"
                resource = key_arn
            assert allowed(policy, f"{service}:{action}", resource), f"{pattern.format(stage=stage)}: {action}"


def test_every_call_of_the_request_paths_is_granted_to_the_api_function(aws, recorder):
    """A broad set of store operations plus signing and verification, as the API function performs them."""
    store, now = aws.store, clock.now()
    aws.keyring.invalidate()

    user = UserRecord("usr_p", "p@example.com", "hash", now)
    store.create_user(user)
    store.get_user(user.user_id)
    store.find_user_id(user.email)
    client = ClientRecord("app_p", "P", ["https://p.example/cb"], ["read:analysis"], ["authorization_code"],
                          "client_secret_basic", owner_id=user.user_id, secrets=[ClientSecret(digest("s"))],
                          created_at=now)
    store.create_client(client)
    store.get_client(client.client_id)
    store.update_client(client.client_id, lambda record: None)
    store.list_owned_apps(user.user_id)
    session = SessionRecord(digest(new_token()), user.user_id, now, now + 600)
    store.put_session(session)
    store.get_session(session.session_digest)
    store.delete_session(session.session_digest)
    parked = AuthorizationRequestRecord(digest(new_token()), client.client_id, "https://p.example/cb", True,
                                        "read:analysis", "s", None, [], now, now + 600)
    store.put_authorization_request(parked)
    store.get_authorization_request(parked.request_digest)
    store.consume_authorization_request(parked.request_digest)
    generation = store.save_consent_scopes(user.user_id, client.client_id, ["read:analysis"], now)
    code = CodeRecord(digest(new_token()), client.client_id, "https://p.example/cb", True, user.user_id,
                      "read:analysis", None, "grt_p", now, now + 60, consent_generation=generation)
    store.put_code(code)
    store.get_code(code.code_digest)
    grant = GrantRecord("grt_p", client.client_id, user.user_id, "read:analysis", now, now + 3600,
                        consent_generation=generation)
    first = RefreshTokenRecord(digest(new_token()), grant.grant_id, client.client_id, user.user_id,
                               "read:analysis", now, now + 3600, consent_generation=generation)
    store.redeem_code(code, grant, first)
    store.get_grant(client.client_id, grant.grant_id)
    store.get_refresh_token(first.token_digest)
    second = RefreshTokenRecord(digest(new_token()), grant.grant_id, client.client_id, user.user_id,
                                "read:analysis", now, now + 3600, consent_generation=generation)
    store.rotate_refresh_token(first, second, "sealed")
    assert store.get_standing(client.client_id, user.user_id, grant.grant_id).consent is not None
    store.get_consent(user.user_id, client.client_id)
    store.list_consents(user.user_id)
    store.revoke_grant(client.client_id, grant.grant_id)
    store.delete_consent(user.user_id, client.client_id)
    store.put_registration_token(RegistrationTokenRecord(digest("r"), now, now + 60))
    store.get_registration_token(digest("r"))
    slot = CounterSlot("login-source:p", 60, 5)
    store.take_slot(slot)
    store.give_back_slot(slot)
    store.counter(slot)
    store.check_limits((slot,))
    store.get_code(code.code_digest, limits=(slot,))  # a code read together with the throttle counters
    store.add_strike("login-account-source:p", lambda strikes: 60, 600)
    store.blocked_until("login-account-source:p")
    store.remember_device(digest("d"), user.user_id, now + 60)
    store.device_user_id(digest("d"))
    store.delete_client(client)
    issued = aws.access_tokens.issue(sub=user.user_id, client_id=client.client_id, scope="read:analysis",
                                     audience=aws.settings.api_audience, grant_id=grant.grant_id)
    aws.access_tokens.verify(issued.token, aws.settings.api_audience)

    actions = {action for _, action, _ in recorder.calls}
    # the recording saw the operations it is meant to check (the guard against a test that checks nothing)
    assert {"GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "ConditionCheckItem",
            "Decrypt"} <= actions
    assert_granted(recorder.calls, API_POLICY, aws.settings)


def test_every_call_of_the_scheduled_rotation_is_granted_to_its_function(http, aws, recorder):
    from chalice.test import Client

    from app import app

    clock.travel(jobs.MIN_NEXT_KEY_AGE_SECONDS)  # the provisioned `next` key is old enough to promote
    with Client(app, stage_name="local") as client:
        event = client.events.generate_cw_event("aws.events", "Scheduled Event", {}, [])
        assert client.lambda_.invoke("rotate_signing_keys", event).payload["current"]
    actions = {action for _, action, _ in recorder.calls}
    assert {"Query", "PutItem", "GenerateDataKey"} <= actions
    assert_granted(recorder.calls, ROTATION_POLICY, aws.settings)


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_function_cannot_mint_keys_scan_or_batch(stage):
    policy = _policy(API_POLICY, stage)
    key = _key_arn(policy)
    table = f"arn:aws:dynamodb:{key.split(':')[3]}:{key.split(':')[4]}:table/{_stage_tables(stage)['OAUTH_TABLE']}"
    for action in ("dynamodb:Scan", "dynamodb:BatchWriteItem", "dynamodb:DeleteTable", "dynamodb:UpdateTimeToLive"):
        assert not allowed(policy, action, table)
    for action in ("kms:GenerateDataKey", "kms:Encrypt", "kms:ScheduleKeyDeletion"):
        assert not allowed(policy, action, key)
    rotation = _policy(ROTATION_POLICY, stage)
    assert not allowed(rotation, "dynamodb:GetItem", table.replace("oauth", "api"))  # only the OAuth table


# --- static: what the store modules can call at all -----------------------------------------------

# PynamoDB (model, transaction and low-level connection) methods -> the DynamoDB IAM actions they need
PYNAMODB_ACTIONS = {
    "get": ["GetItem"], "refresh": ["GetItem"], "get_item": ["GetItem"],
    "save": ["PutItem"], "put_item": ["PutItem"],
    "update": ["UpdateItem"], "update_item": ["UpdateItem"],
    "delete": ["DeleteItem"], "delete_item": ["DeleteItem"],
    "query": ["Query"], "count": ["Query"],
    "condition_check": ["ConditionCheckItem"],
    "scan": ["Scan"], "rate_limited_scan": ["Scan"],
    "batch_get": ["BatchGetItem"], "batch_get_item": ["BatchGetItem"],
    "batch_write": ["BatchWriteItem"], "batch_write_item": ["BatchWriteItem"],
    "transact_get_items": ["GetItem"],
    "create_table": ["CreateTable"], "delete_table": ["DeleteTable"], "describe_table": ["DescribeTable"],
    "update_table": ["UpdateTable"], "update_time_to_live": ["UpdateTimeToLive"], "exists": ["DescribeTable"],
}
STORE_MODULES = sorted((ROOT / "chalicelib" / "store").glob("*.py"))


def _store_calls(path: Path):
    """(function name, attribute called) for every call written as `something.attribute(...)`."""
    tree = ast.parse(path.read_text())
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    yield function.name, node.func


def _condition_operand(attribute: ast.Attribute) -> bool:
    """`Item.pk.exists()` builds a condition (no call to AWS); `Item.exists()` would describe the table."""
    receiver = attribute.value
    return isinstance(receiver, ast.Attribute) and attribute.attr in ("exists", "does_not_exist")


@pytest.mark.parametrize("path", STORE_MODULES, ids=lambda p: p.name)
def test_store_modules_only_use_granted_dynamodb_operations(path):
    for stage in STAGES:
        policy = _policy(API_POLICY, stage)
        key = _key_arn(policy)
        region, account = key.split(":")[3:5]
        tables = [f"arn:aws:dynamodb:{region}:{account}:table/{name}" for name in _stage_tables(stage).values()]
        for function, attribute in _store_calls(path):
            actions = PYNAMODB_ACTIONS.get(attribute.attr)
            if actions is None or _condition_operand(attribute):
                continue
            if function.startswith("scan_"):  # operator commands only, run with the operator's credentials
                continue
            for action in actions:
                assert all(allowed(policy, f"dynamodb:{action}", t) for t in tables), (
                    f"{path.name}:{attribute.lineno} {function}() calls .{attribute.attr}() needing "
                    f"dynamodb:{action}, which the API function's policy does not grant"
                )


def test_request_paths_never_call_operator_scans():
    for directory in ("web", "oauth"):
        for path in (ROOT / "chalicelib" / directory).glob("*.py"):
            assert ".scan_" not in path.read_text(), path.name
