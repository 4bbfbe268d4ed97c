"""SnapStart on the CloudFormation path: published versions behind an alias that API Gateway invokes."""

from __future__ import annotations

import json

import pytest

import infra.template as infra

FUNCTION = infra.CHALICE_NAMES["api_handler"][0]
ALIAS = f"{FUNCTION}Alias{infra.ALIAS}"  # SAM's name for the alias AutoPublishAlias creates


@pytest.fixture
def packaged_prod(packaged):
    """The prod stage's packaged template (`chalice package` with the merge template)."""
    return packaged["prod"][0]


@pytest.mark.parametrize("stage", infra.STAGES)
def test_the_api_function_publishes_snapstart_versions_behind_an_alias(stage):
    assert infra.SNAPSTART[stage]
    properties = infra.merge_template(stage)["Resources"][FUNCTION]["Properties"]
    assert properties["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert properties["AutoPublishAlias"] == infra.ALIAS


def test_api_gateway_invokes_only_the_alias_never_the_unpublished_function(packaged_prod):
    """SnapStart applies to published versions only: a route left on $LATEST would cold-start as before."""
    resources = packaged_prod["Resources"]
    paths = resources["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    lambda_methods = [(path, method, m["x-amazon-apigateway-integration"]) for path, methods in paths.items()
                      for method, m in methods.items() if m["x-amazon-apigateway-integration"]["type"] == "aws_proxy"]
    assert {path for path, _, _ in lambda_methods} >= {"/token", "/authorize", "/.well-known/jwks.json"}
    for path, method, integration in lambda_methods:
        assert f"${{{ALIAS}}}/invocations" in integration["uri"]["Fn::Sub"], (path, method)
    assert f"{FUNCTION}.Arn" not in json.dumps(resources["RestAPI"])
    assert resources[f"{FUNCTION}InvokePermission"]["Properties"]["FunctionName"] == {"Ref": ALIAS}
    assert resources[FUNCTION]["Properties"]["Runtime"] >= "python3.12"  # SnapStart for Python needs 3.12+
