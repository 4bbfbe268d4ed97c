"""Deploying to AWS: provision (idempotent, records the stage), the merge templates, chalice package + cfn-lint."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib import cli, wiring
from chalicelib.provision import POLICY_FILES
from chalicelib.settings import ConfigError, key_rotation_days
from chalicelib.store.schema import table_definitions
from tests.package_support import BIN, ROOT, ROTATION_DAYS, STAGES

sys.path.insert(0, str(ROOT / "infra"))
import template as infra  # noqa: E402


def _config() -> dict:
    return json.loads((ROOT / ".chalice" / "config.json").read_text())


def _stage_env(stage: str) -> dict:
    return _config()["stages"][stage]["environment_variables"]


def _policy_files(stage: str) -> list[Path]:
    return [ROOT / ".chalice" / pattern.format(stage=stage) for pattern in POLICY_FILES]


@pytest.fixture
def chalice_dir(tmp_path):
    """A copy of .chalice/: tests never write the real configuration."""
    copy = tmp_path / ".chalice"
    copy.mkdir()
    for path in (ROOT / ".chalice").glob("*.json"):
        shutil.copy(path, copy / path.name)
    return copy


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.json"))}


@pytest.mark.parametrize("stage", STAGES)
def test_provision_creates_records_and_then_changes_nothing(stage, chalice_dir, capsys, monkeypatch):
    monkeypatch.delenv("ISSUER_URL")  # the stage's own issuer, from the config
    monkeypatch.setenv("STAGE", stage)
    real = _snapshot(ROOT / ".chalice")
    try:
        with mock_aws():
            assert cli.main(["provision", "--stage", stage, "--chalice-dir", str(chalice_dir)]) == 0
            first = capsys.readouterr().out
            env = json.loads((chalice_dir / "config.json").read_text())["stages"][stage]["environment_variables"]
            dynamodb, kms = boto3.client("dynamodb"), boto3.client("kms")
            arns = {}
            for definition in table_definitions(env["OAUTH_TABLE"], env["API_TABLE"]):
                table = dynamodb.describe_table(TableName=definition.name)["Table"]
                arns[definition.name] = table["TableArn"]
                assert table["SSEDescription"]["Status"] == "ENABLED"
                backups = dynamodb.describe_continuous_backups(TableName=definition.name)
                pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
                assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
                ttl = dynamodb.describe_time_to_live(TableName=definition.name)["TimeToLiveDescription"]
                if definition.ttl_attribute:
                    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}
            key = kms.describe_key(KeyId=f"alias/clipron-oauth-{stage}")["KeyMetadata"]
            assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
            assert env["KMS_KEY_ID"] == key["Arn"]
            assert f"created table {env['OAUTH_TABLE']}" in first
            assert f"created KMS key alias/clipron-oauth-{stage}" in first

            for pattern in POLICY_FILES:
                policy = json.loads((chalice_dir / pattern.format(stage=stage)).read_text())
                named = {r for s in policy["Statement"] for r in s["Resource"]}
                assert key["Arn"] in named
                assert arns[env["OAUTH_TABLE"]] in named
                assert all(":123456789012:" in r for r in named)  # moto's account, found, not guessed

            recorded = _snapshot(chalice_dir)
            wiring.reset()
            assert cli.main(["provision", "--stage", stage, "--chalice-dir", str(chalice_dir)]) == 0
            assert capsys.readouterr().out.startswith("nothing to change")
            assert _snapshot(chalice_dir) == recorded
    finally:
        wiring.reset()
    assert _snapshot(ROOT / ".chalice") == real


def test_committed_merge_templates_are_what_the_code_generates():
    for stage in STAGES:
        assert infra.template_path(stage).read_text() == infra.render(stage), "run: python infra/template.py"


@pytest.mark.parametrize("stage", STAGES)
def test_merge_template_holds_tables_with_ttl_and_a_rotating_key(stage):
    env = _stage_env(stage)
    resources = json.loads(infra.template_path(stage).read_text())["Resources"]
    for definition in table_definitions(env["OAUTH_TABLE"], env["API_TABLE"]):
        table = resources[definition.logical_name]
        assert table["Type"] == "AWS::DynamoDB::Table" and table["DeletionPolicy"] == "Retain"
        properties = table["Properties"]
        assert properties["TableName"] == definition.name
        assert properties["SSESpecification"] == {"SSEEnabled": True}
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        if definition.ttl_attribute:
            assert properties["TimeToLiveSpecification"] == {"AttributeName": definition.ttl_attribute, "Enabled": True}
    key = resources[infra.KEY]
    assert key["Type"] == "AWS::KMS::Key" and key["DeletionPolicy"] == "Retain"
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"]["KeyPolicy"]["Statement"]


def test_packaged_templates_pass_cfn_lint_without_error_or_warning(packaged):
    templates = [str(out / "sam.json") for _, out in packaged.values()]
    result = subprocess.run([str(BIN / "cfn-lint"), *templates], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("stage", STAGES)
def test_packaged_template_holds_everything_in_one_stack(packaged, stage):
    template, _ = packaged[stage]
    resources = template["Resources"]
    types = sorted(r["Type"] for r in resources.values())
    assert types.count("AWS::DynamoDB::Table") == 2 and types.count("AWS::KMS::Key") == 1
    env = _stage_env(stage)
    for definition in table_definitions(env["OAUTH_TABLE"], env["API_TABLE"]):
        properties = resources[definition.logical_name]["Properties"]
        assert ("TimeToLiveSpecification" in properties) == (definition.ttl_attribute is not None)
    assert resources[infra.KEY]["Properties"]["EnableKeyRotation"] is True
    assert types.count("AWS::Serverless::Function") == 2 and "AWS::Serverless::Api" in types
    api, rotation = resources["APIHandler"]["Properties"], resources["RotateSigningKeys"]["Properties"]
    assert api["Timeout"] == 25 and api["MemorySize"] == 1024
    assert rotation["Events"]["RotateSigningKeysEvent"]["Properties"]["Schedule"] == f"rate({ROTATION_DAYS} days)"
    for function in (api, rotation):
        variables = function["Environment"]["Variables"]
        assert variables["OAUTH_TABLE"] == {"Ref": "OAuthTable"}
        assert variables["KMS_KEY_ID"] == {"Fn::GetAtt": ["SigningKeyEnvelopeKey", "Arn"]}
        assert variables["STAGE"] == stage and variables["ISSUER_URL"].startswith("https://")
    for name in ("ApiHandlerLogGroup", "RotateSigningKeysLogGroup"):
        assert resources[name]["Properties"]["RetentionInDays"] == _config()["stages"][stage]["log_retention_in_days"]
    # the roles name this stack's tables and key, never "*"
    for role in ("ApiHandlerRole", "RotateSigningKeysRole"):
        for statement in resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
            assert "*" not in json.dumps(statement["Action"])
            assert all(isinstance(r, dict) for r in statement["Resource"])


def _statements(path: Path) -> list[dict]:
    return json.loads(path.read_text())["Statement"]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("path", [p for stage in STAGES for p in _policy_files(stage)], ids=lambda p: p.name)
def test_policy_files_name_exact_resources(path):
    for statement in _statements(path):
        assert statement["Effect"] == "Allow"
        actions = _as_list(statement["Action"])
        assert all("*" not in action for action in actions)
        if any(a.startswith(("dynamodb:", "kms:")) for a in actions):
            for resource in _as_list(statement["Resource"]):
                assert "*" not in resource, resource
                assert resource.startswith(("arn:aws:dynamodb:", "arn:aws:kms:")), resource


@pytest.mark.parametrize("stage", STAGES)
def test_policy_files_agree_with_the_stage_config(stage):
    """The tables in the policies are the stage's tables; a key ARN in the config is the policies' key."""
    env = _stage_env(stage)
    for path, (function, variables) in zip(_policy_files(stage), POLICY_FILES.values(), strict=True):
        by_sid = {s["Sid"]: s for s in _statements(path)}
        tables = sorted(r.rsplit("/", 1)[1] for r in by_sid["OAuthTables"]["Resource"])
        assert tables == sorted(env[v] for v in variables)
        if env["KMS_KEY_ID"].startswith("arn:"):
            assert by_sid["SigningKeyEnvelopes"]["Resource"] == [env["KMS_KEY_ID"]]
        assert by_sid["Logs"]["Resource"][0].endswith(f":log-group:/aws/lambda/clipron-oauth-{stage}-{function}:*")


def test_rotation_cadence_setting_is_validated():
    assert key_rotation_days({}) == 30
    assert key_rotation_days({"KEY_ROTATION_DAYS": "7"}) == 7
    with pytest.raises(ConfigError, match="KEY_ROTATION_DAYS must be between 1 and 365"):
        key_rotation_days({"KEY_ROTATION_DAYS": "0"})


@pytest.mark.parametrize("stage", STAGES)
def test_api_gateway_answers_preflights_on_the_back_channel_only(packaged, stage):
    """API Gateway answers OPTIONS itself (MOCK integration) where the app's rule sets CORS: every back-channel
    path, with `*` and no credentials; a page's OPTIONS goes to the app (its 405, no CORS)."""
    from chalicelib.web.cors import back_channel

    template, _ = packaged[stage]
    paths = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    for path, methods in paths.items():
        if not back_channel(path):
            assert methods["options"]["x-amazon-apigateway-integration"]["type"] == "aws_proxy", path
            continue
        headers = methods["options"]["x-amazon-apigateway-integration"]["responses"]["default"]["responseParameters"]
        assert headers["method.response.header.Access-Control-Allow-Origin"] == "'*'", path
        assert "method.response.header.Access-Control-Allow-Credentials" not in headers
    for path in ("/token", "/revoke", "/introspect", "/register", "/register/{client_id}", "/v1/me",
                 "/.well-known/jwks.json", "/.well-known/oauth-authorization-server"):
        assert "options" in paths[path], path
    for page in ("/authorize", "/consent"):
        assert paths[page]["options"]["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
