"""Provisioning: the tables (TTL on) and the KMS key (rotation on), created if absent; then signing keys.

Idempotent: a second run changes nothing and says so. Used by `cli provision` and the local run.
"""

from __future__ import annotations

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
        dynamodb.describe_table(TableName=table.name)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        dynamodb.create_table(**table.create_table_kwargs())
        dynamodb.get_waiter("table_exists").wait(TableName=table.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        changes.append(f"created table {table.name}")
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


def provision(services: Services) -> list[str]:
    """Create what is missing; return one line per change (empty when everything was there)."""
    settings = services.settings
    dynamodb, kms = _clients(settings)
    changes: list[str] = []
    for table in table_definitions(settings.table_name, settings.api_table_name):
        changes += ensure_table(dynamodb, table, point_in_time_recovery=settings.stage != "local")
    _, key_changes = ensure_kms_key(kms, settings.kms_key_id, settings.stage)
    changes += key_changes
    changes += [f"created {line} signing key" for line in services.keyring.ensure()]
    return changes
