"""The table definitions, shared by `provision`, the local run and the CloudFormation template.

Single-table design: every OAuth item lives in one table keyed by (pk, sk), so one botocore
connection serves them all, with one TTL attribute. The Clipron API's data has a table of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TTL_ATTRIBUTE = "ttl"


@dataclass(frozen=True)
class TableDefinition:
    logical_name: str  # CloudFormation resource name
    name: str
    ttl_attribute: str | None

    def key_schema(self) -> list[dict[str, str]]:
        return [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]

    def attribute_definitions(self) -> list[dict[str, str]]:
        return [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ]

    def create_table_kwargs(self) -> dict[str, Any]:
        """Arguments for DynamoDB CreateTable (on-demand billing, encrypted at rest)."""
        return {
            "TableName": self.name,
            "KeySchema": self.key_schema(),
            "AttributeDefinitions": self.attribute_definitions(),
            "BillingMode": "PAY_PER_REQUEST",
            "SSESpecification": {"Enabled": True},
        }

    def cloudformation(self) -> dict[str, Any]:
        """The AWS::DynamoDB::Table resource for the merge template."""
        properties: dict[str, Any] = {
            "TableName": self.name,
            "KeySchema": self.key_schema(),
            "AttributeDefinitions": self.attribute_definitions(),
            "BillingMode": "PAY_PER_REQUEST",
            "SSESpecification": {"SSEEnabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        }
        if self.ttl_attribute:
            properties["TimeToLiveSpecification"] = {"AttributeName": self.ttl_attribute, "Enabled": True}
        return {
            "Type": "AWS::DynamoDB::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": properties,
        }


def table_definitions(oauth_table: str, api_table: str) -> list[TableDefinition]:
    return [
        TableDefinition("OAuthTable", oauth_table, TTL_ATTRIBUTE),
        TableDefinition("ApiTable", api_table, None),
    ]
