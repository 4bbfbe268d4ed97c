"""Generate the CloudFormation merge templates (infra/<stage>.json) from the code that defines them.

One source of truth: the tables come from chalicelib/store/schema.py, the IAM actions from the
hand-written .chalice/policy-*.json (only their resources are swapped for references to the
stack's own tables, key and log groups), the stage values from .chalice/config.json.

    python infra/template.py          # rewrite infra/dev.json and infra/prod.json
    python infra/template.py --check  # exit 1 if a committed template differs from the code

Then `chalice package --stage prod --merge-template infra/prod.json out/` writes one SAM template.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.audit import THROTTLE_EVENTS  # noqa: E402
from chalicelib.provision import (  # noqa: E402
    APP_NAME,
    KEY_SID,
    LOGS_SID,
    POLICY_FILES,
    TABLES_SID,
)
from chalicelib.store.schema import table_definitions  # noqa: E402

STAGES = ("dev", "prod")
KEY = "SigningKeyEnvelopeKey"
# chalice's CloudFormation names for what it generates (chalice/package.py, to_cfn_resource_name)
CHALICE_NAMES = {
    "api_handler": ("APIHandler", "ApiHandlerRole", "ApiHandlerLogGroup"),
    "rotate_signing_keys": ("RotateSigningKeys", "RotateSigningKeysRole", "RotateSigningKeysLogGroup"),
}


def _arn(logical_name: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_name, "Arn"]}


def _stage_config(stage: str) -> dict[str, Any]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {**config.get("environment_variables", {}), **config["stages"][stage]["environment_variables"]}


def _kms_key(stage: str) -> dict[str, Any]:
    return {
        "Type": "AWS::KMS::Key",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "Description": f"Clipron OAuth {stage}: envelope encryption of signing keys",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "KeyUsage": "ENCRYPT_DECRYPT",
            "EnableKeyRotation": True,
            "KeyPolicy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        # the account administers the key through IAM; the functions' roles name
                        # their own narrow kms actions on this key's ARN
                        "Sid": "AccountAdministersThroughIam",
                        "Effect": "Allow",
                        "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                        "Action": "kms:*",
                        "Resource": "*",
                    }
                ],
            },
            "Tags": [{"Key": "app", "Value": APP_NAME}, {"Key": "stage", "Value": stage}],
        },
    }


def _role_policy(stage: str, pattern: str, function: str, tables: tuple[str, ...], logical: dict[str, str]) -> Any:
    """The hand-written policy's statements with resources pointing at this stack's resources."""
    document = json.loads((ROOT / ".chalice" / pattern.format(stage=stage)).read_text())
    account = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
    log_group = f"{account}:log-group:{_log_group(stage, function)}:*"
    resources = {
        TABLES_SID: [_arn(logical[variable]) for variable in tables],
        KEY_SID: [_arn(KEY)],
        LOGS_SID: [{"Fn::Sub": log_group}],
    }
    statements = [{**s, "Resource": resources[s["Sid"]]} for s in document["Statement"]]
    role = CHALICE_NAMES[function][1]
    return [{"PolicyName": f"{role}Policy", "PolicyDocument": {**document, "Statement": statements}}]


def _log_group(stage: str, function: str) -> str:
    return f"/aws/lambda/{APP_NAME}-{stage}-{function}"


METRIC_NAMESPACE = "Clipron/OAuth"
ALARM_TOPIC = "SecurityAlarmTopic"
# metric -> (audit events it counts, alarm threshold per 5 minutes, what the alarm means). Quoted terms
# match the event name wherever the Lambda runtime puts the JSON line (its text prefix or not).
WATCHED = {
    "RefreshReuseDetected": (("refresh.reuse_detected",), 1,
                             "a rotated refresh token was used again: possible token theft, the grant was revoked"),
    "ThrottledAuthentications": (THROTTLE_EVENTS, 50, "a spike of throttled logins or client authentications"),
    "ServerErrors": (("http.server_error",), 5, "the API answered 5xx"),
}


def _security_alarms(stage: str) -> dict[str, Any]:
    """Metric filters on the API function's audit events, an alarm per metric, one SNS topic to subscribe to."""
    resources: dict[str, Any] = {
        ALARM_TOPIC: {"Type": "AWS::SNS::Topic", "Properties": {
            "DisplayName": f"Clipron OAuth {stage} security alarms",
            "Tags": [{"Key": "app", "Value": APP_NAME}, {"Key": "stage", "Value": stage}],
        }},
    }
    log_group = CHALICE_NAMES["api_handler"][2]
    for metric, (events, threshold, meaning) in WATCHED.items():
        resources[f"{metric}Filter"] = {
            "Type": "AWS::Logs::MetricFilter",
            "Properties": {
                "LogGroupName": {"Ref": log_group},
                "FilterPattern": " ".join(f'?"{event}"' for event in events) if len(events) > 1 else f'"{events[0]}"',
                "MetricTransformations": [{"MetricName": metric, "MetricNamespace": f"{METRIC_NAMESPACE}/{stage}",
                                           "MetricValue": "1", "DefaultValue": 0}],
            },
        }
        resources[f"{metric}Alarm"] = {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmDescription": f"Clipron OAuth {stage}: {meaning}",
                "Namespace": f"{METRIC_NAMESPACE}/{stage}",
                "MetricName": metric,
                "Statistic": "Sum",
                "Period": 300,
                "EvaluationPeriods": 1,
                "Threshold": threshold,
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
                "AlarmActions": [{"Ref": ALARM_TOPIC}],
            },
        }
    return resources


# Lambda SnapStart (Python 3.12+) on the API function, per stage. SnapStart applies to published
# versions only: the function publishes a version behind the alias `live` on every deploy, and
# API Gateway invokes the alias. The hooks in chalicelib/snapstart.py decide what a snapshot keeps.
SNAPSTART = {"dev": True, "prod": True}
ALIAS = "live"


def _app_routes() -> dict[str, list[str]]:
    """The app's paths and methods, as `chalice package` writes them into the API's OpenAPI body."""
    previous = os.environ.get("AWS_CHALICE_CLI_MODE")
    os.environ["AWS_CHALICE_CLI_MODE"] = "true"  # import app.py the way the Chalice CLI does: no settings check
    try:
        from app import app
    finally:
        if previous is None:
            del os.environ["AWS_CHALICE_CLI_MODE"]
    return {path: sorted(entries) for path, entries in app.routes.items()}


def _snapstart(resources: dict[str, Any]) -> None:
    """SnapStart on published versions; API Gateway and its invoke permission point at the alias."""
    function = CHALICE_NAMES["api_handler"][0]
    resources[function]["Properties"].update(
        {"AutoPublishAlias": ALIAS, "SnapStart": {"ApplyOn": "PublishedVersions"}}
    )
    uri = {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                      f"${{{function}Alias{ALIAS}}}/invocations"}
    paths = {path: {method.lower(): {"x-amazon-apigateway-integration": {"uri": uri}} for method in methods}
             for path, methods in _app_routes().items()}
    _api_definition(resources)["paths"] = paths
    resources[f"{function}InvokePermission"] = {"Properties": {"FunctionName": {"Ref": f"{function}Alias{ALIAS}"}}}


def _api_definition(resources: dict[str, Any]) -> dict[str, Any]:
    """The part of the API's OpenAPI body (RestAPI's DefinitionBody) that the merge template adds to."""
    return resources.setdefault("RestAPI", {}).setdefault("Properties", {}).setdefault("DefinitionBody", {})


def _gateway_responses(resources: dict[str, Any]) -> None:
    """Backstop: should a request ever match no method (the app answers every method of every path,
    web/methods.py), API Gateway sends our JSON 404 instead of its 403 "Missing Authentication Token",
    which quotes the Authorization header. Part of the OpenAPI body, so every deployment carries it."""
    from chalicelib.web.home import NOT_FOUND

    _api_definition(resources)["x-amazon-apigateway-gateway-responses"] = {
        "MISSING_AUTHENTICATION_TOKEN": {
            "statusCode": 404,
            "responseParameters": {"gatewayresponse.header.Cache-Control": "'no-store'"},
            "responseTemplates": {"application/json": json.dumps(NOT_FOUND, separators=(",", ":"))},
        }
    }


def merge_template(stage: str) -> dict[str, Any]:
    environment = _stage_config(stage)
    tables = table_definitions(environment["OAUTH_TABLE"], environment["API_TABLE"])
    logical = dict(zip(("OAUTH_TABLE", "API_TABLE"), (t.logical_name for t in tables), strict=True))
    resources: dict[str, Any] = {t.logical_name: t.cloudformation() for t in tables}
    resources[KEY] = _kms_key(stage)
    resources[f"{KEY}Alias"] = {
        "Type": "AWS::KMS::Alias",
        "Properties": {"AliasName": f"alias/{APP_NAME}-{stage}", "TargetKeyId": {"Ref": KEY}},
    }
    variables = {
        "OAUTH_TABLE": {"Ref": logical["OAUTH_TABLE"]},
        "API_TABLE": {"Ref": logical["API_TABLE"]},
        "KMS_KEY_ID": _arn(KEY),
    }
    for pattern, (function, function_tables) in POLICY_FILES.items():
        function_name, role_name, log_group_name = CHALICE_NAMES[function]
        # a fixed function name (chalice deploy's naming) lets the role name its log group without a cycle
        resources[function_name] = {
            "Properties": {
                "FunctionName": f"{APP_NAME}-{stage}-{function}",
                "Environment": {"Variables": variables},
            }
        }
        resources[role_name] = {
            "Properties": {"Policies": _role_policy(stage, pattern, function, function_tables, logical)}
        }
        resources[log_group_name] = {"Properties": {"LogGroupName": _log_group(stage, function)}}
    resources.update(_security_alarms(stage))
    if SNAPSTART[stage]:
        _snapstart(resources)
    _gateway_responses(resources)
    outputs = {
        "OAuthTableName": {"Value": {"Ref": logical["OAUTH_TABLE"]}},
        "ApiTableName": {"Value": {"Ref": logical["API_TABLE"]}},
        "SigningKeyEnvelopeKeyArn": {"Value": _arn(KEY)},
        "SecurityAlarmTopicArn": {"Value": {"Ref": ALARM_TOPIC}},
    }
    return {"Resources": resources, "Outputs": outputs}


def template_path(stage: str) -> Path:
    return ROOT / "infra" / f"{stage}.json"


def render(stage: str) -> str:
    return json.dumps(merge_template(stage), indent=2) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for stage in STAGES:
        path, text = template_path(stage), render(stage)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)} (run python infra/template.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
