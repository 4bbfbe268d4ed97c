"""Provisioning: the tables (TTL on) and the KMS key (rotation on), created if absent; then signing keys.

Idempotent: a second run changes nothing and says so. Used by `cli provision` and the local run.
For a deployed stage (`cli provision --stage dev|prod`) it then records what it found in
.chalice/: the stage's environment_variables in config.json and the exact resource ARNs in the
stage's IAM policy files, whose actions stay hand-written (see README "Deploy to AWS").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
from botocore.exceptions import ClientError

from chalicelib.settings import Settings
from chalicelib.store.schema import TableDefinition, table_definitions
from chalicelib.wiring import Services


def _clients(settings: Settings) -> tuple[Any, Any]:
    session = botocore.session.get_session()
    return (
        session.create_client("dynamodb", region_name=settings.aws_region),
        session.create_client("kms", region_name=settings.aws_region),
    )


def ensure_table(dynamodb: Any, table: TableDefinition, point_in_time_recovery: bool) -> list[str]:
    changes = []
    try:
        described = dynamodb.describe_table(TableName=table.name)["Table"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        dynamodb.create_table(**table.create_table_kwargs())
        dynamodb.get_waiter("table_exists").wait(TableName=table.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        changes.append(f"created table {table.name}")
    else:
        if described.get("SSEDescription", {}).get("Status") not in ("ENABLED", "ENABLING", None):
            # DynamoDB always encrypts at rest; this only moves an existing table to the KMS-managed key
            dynamodb.update_table(TableName=table.name, SSESpecification={"Enabled": True})
            changes.append(f"enabled KMS encryption at rest on {table.name}")
    if table.ttl_attribute:
        ttl = dynamodb.describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
        if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            dynamodb.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )
            changes.append(f"enabled TTL on {table.name}.{table.ttl_attribute}")
    if point_in_time_recovery:
        backups = dynamodb.describe_continuous_backups(TableName=table.name)["ContinuousBackupsDescription"]
        recovery = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
        if recovery != "ENABLED":
            dynamodb.update_continuous_backups(
                TableName=table.name,
                PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
            )
            changes.append(f"enabled point-in-time recovery on {table.name}")
    return changes


def ensure_kms_key(kms: Any, key_id: str, stage: str) -> tuple[str, list[str]]:
    """The key's ARN; creates the key (and alias, when key_id is an alias) with rotation on if absent."""
    try:
        metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        changes = []
    except ClientError as error:
        if error.response["Error"]["Code"] != "NotFoundException" or not key_id.startswith("alias/"):
            raise
        metadata = kms.create_key(
            Description=f"Clipron OAuth {stage}: envelope encryption of signing keys",
            KeyUsage="ENCRYPT_DECRYPT",
            KeySpec="SYMMETRIC_DEFAULT",
            Tags=[{"TagKey": "app", "TagValue": "clipron-oauth"}, {"TagKey": "stage", "TagValue": stage}],
        )["KeyMetadata"]
        kms.create_alias(AliasName=key_id, TargetKeyId=metadata["KeyId"])
        changes = [f"created KMS key {key_id}"]
    if not kms.get_key_rotation_status(KeyId=metadata["KeyId"]).get("KeyRotationEnabled"):
        kms.enable_key_rotation(KeyId=metadata["KeyId"])
        changes.append(f"enabled rotation of KMS key {key_id}")
    return metadata["Arn"], changes


@dataclass(frozen=True)
class StageResources:
    """What a deployed stage's configuration and IAM policies must name."""

    table_arns: dict[str, str]  # environment variable (OAUTH_TABLE, API_TABLE) -> table ARN
    key_arn: str

    @property
    def partition(self) -> str:
        return self.key_arn.split(":")[1]

    @property
    def region(self) -> str:
        return self.key_arn.split(":")[3]

    @property
    def account(self) -> str:
        return self.key_arn.split(":")[4]

    def environment(self) -> dict[str, str]:
        tables = {variable: arn.rsplit("/", 1)[1] for variable, arn in self.table_arns.items()}
        return {**tables, "KMS_KEY_ID": self.key_arn}


def ensure_resources(services: Services) -> tuple[StageResources, list[str]]:
    """Create the tables and the KMS key if missing; return their ARNs and one line per change."""
    settings = services.settings
    dynamodb, kms = _clients(settings)
    changes: list[str] = []
    table_arns = {}
    for variable, table in zip(
        ("OAUTH_TABLE", "API_TABLE"), table_definitions(settings.table_name, settings.api_table_name), strict=True
    ):
        changes += ensure_table(dynamodb, table, point_in_time_recovery=settings.stage != "local")
        table_arns[variable] = dynamodb.describe_table(TableName=table.name)["Table"]["TableArn"]
    key_arn, key_changes = ensure_kms_key(kms, settings.kms_key_id, settings.stage)
    return StageResources(table_arns, key_arn), changes + key_changes


def provision(services: Services) -> list[str]:
    """Create what is missing; return one line per change (empty when everything was there)."""
    _, changes = ensure_resources(services)
    changes += [f"created {line} signing key" for line in services.keyring.ensure()]
    return changes


# --- recording a deployed stage's resources in .chalice/ ------------------------------------

APP_NAME = "clipron-oauth"
# policy file (per stage) -> the Lambda function whose role it is (chalice makes one role per function
# when autogen_policy is false) and the tables it may touch (the rotation only reads/writes signing keys)
POLICY_FILES = {
    "policy-{stage}.json": ("api_handler", ("OAUTH_TABLE", "API_TABLE")),
    "policy-rotation-{stage}.json": ("rotate_signing_keys", ("OAUTH_TABLE",)),
}
# Sid of a policy statement -> which resources it names
TABLES_SID, KEY_SID, LOGS_SID = "OAuthTables", "SigningKeyEnvelopes", "Logs"


def log_group_arn(resources: StageResources, stage: str, function: str) -> str:
    """The function's log group (chalice deploy names functions <app>-<stage>-<function>), its streams."""
    account = f"arn:{resources.partition}:logs:{resources.region}:{resources.account}"
    return f"{account}:log-group:/aws/lambda/{APP_NAME}-{stage}-{function}:*"


def policy_resources(
    resources: StageResources, stage: str, function: str, tables: tuple[str, ...]
) -> dict[str, list[str]]:
    return {
        TABLES_SID: sorted(resources.table_arns[variable] for variable in tables),
        KEY_SID: [resources.key_arn],
        LOGS_SID: [log_group_arn(resources, stage, function)],
    }


def _write_json(path: Path, document: dict[str, Any]) -> bool:
    text = json.dumps(document, indent=2) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def record_stage(chalice_dir: Path, stage: str, resources: StageResources) -> list[str]:
    """Write the stage's environment variables and the policies' resource ARNs; return what changed."""
    changes = []
    config_path = chalice_dir / "config.json"
    config = json.loads(config_path.read_text())
    environment = config["stages"][stage].setdefault("environment_variables", {})
    environment.update(resources.environment())
    if _write_json(config_path, config):
        changes.append(f"recorded table names and key ARN in {config_path.name} (stage {stage})")
    for pattern, (function, tables) in POLICY_FILES.items():
        path = chalice_dir / pattern.format(stage=stage)
        policy = json.loads(path.read_text())
        wanted = policy_resources(resources, stage, function, tables)
        for statement in policy["Statement"]:
            if statement.get("Sid") in wanted:
                statement["Resource"] = wanted[statement["Sid"]]
        if _write_json(path, policy):
            changes.append(f"recorded resource ARNs in {path.name}")
    return changes


def provision_stage(services: Services, chalice_dir: Path) -> list[str]:
    """`cli provision --stage dev|prod`: the resources, the signing keys, then .chalice/ updated."""
    resources, changes = ensure_resources(services)
    changes += [f"created {line} signing key" for line in services.keyring.ensure()]
    return changes + record_stage(chalice_dir, services.settings.stage, resources)
