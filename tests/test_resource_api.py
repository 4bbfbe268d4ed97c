"""The Clipron API under /v1: offline bearer check (RFC 6750 errors), scopes, data, RFC 9728 metadata,
and the DynamoDB/KMS call budget of the bearer check and of introspection."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from chalicelib import clock
from chalicelib.api.service import seed_demo_analyses
from chalicelib.store.api_store import ApiStore
from chalicelib.store.dynamo import shared_connection
from tests.lifecycle_helpers import client_token, introspect, make_client, mint
from tests.store_support import list_projects

METADATA_URL = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/v1"


@pytest.fixture
def clients(aws):
    make_client(aws, "c1")
    make_client(aws, "rs1", resource_server=True)
    return aws


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_project(http, token: str, body: object, content_type: str = "application/json"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http.post("/v1/projects", body=raw, headers={"Content-Type": content_type, **bearer(token)})


def test_me_returns_the_tokens_subject_client_and_scope(clients, http):
    minted = mint(clients, "c1", scope="read:analysis")
    response = http.get("/v1/me", headers=bearer(minted.access_token))
    assert response.status_code == 200
    assert json.loads(response.body) == {"sub": "user-1", "client_id": "c1", "scope": "read:analysis"}
    lowercase = http.get("/v1/me", headers={"Authorization": f"bearer {minted.access_token}"})
    assert lowercase.status_code == 200  # the scheme is case-insensitive (RFC 6750 §2.1, RFC 7235)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic YzE6cw=="}, {"Authorization": ""}])
def test_a_missing_token_gets_a_challenge_without_an_error_code(clients, http, headers):
    response = http.get("/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Bearer realm="clipron", resource_metadata="{METADATA_URL}"'
    assert json.loads(response.body)["error"] == "invalid_token"  # the body of every 401 names its error


@pytest.mark.parametrize("authorization", ["Bearer not-a-jwt", "Bearer ", "Bearer a b", "Bearer a.b.c"])
def test_an_invalid_token_gets_invalid_token(clients, http, authorization):
    response = http.get("/v1/me", headers={"Authorization": authorization})
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="clipron", error="invalid_token", error_description="')
    assert challenge.endswith(f'resource_metadata="{METADATA_URL}"')
    assert json.loads(response.body)["error"] == "invalid_token"


def test_an_expired_token_gets_invalid_token(clients, http):
    minted = mint(clients, "c1")
    clock.travel(clients.settings.access_token_seconds)
    response = http.get("/v1/me", headers=bearer(minted.access_token))
    assert response.status_code == 401
    assert 'error="invalid_token", error_description="the access token has expired"' in \
        response.headers["WWW-Authenticate"]


def test_a_missing_scope_gets_insufficient_scope(clients, http):
    minted = mint(clients, "c1", scope="read:analysis")
    response = create_project(http, minted.access_token, {"name": "x"})
    assert response.status_code == 403
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="write:project"' in challenge
    assert json.loads(response.body)["error"] == "insufficient_scope"
    other = mint(clients, "c1", scope="write:project")
    assert http.get("/v1/analyses", headers=bearer(other.access_token)).status_code == 403
    assert list_projects("user-1") == []


@pytest.mark.parametrize("path", ["/v1/me", "/v1/analyses"])
def test_a_client_credentials_token_acts_for_no_user(clients, http, path):
    response = http.get(path, headers=bearer(client_token(clients, "c1", scope="read:analysis")))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_a_token_for_another_audience_is_refused(clients, http):
    token = clients.access_tokens.issue(sub="user-1", client_id="c1", scope="read:analysis",
                                        audience="https://rs2.example", grant_id=None).token
    assert http.get("/v1/me", headers=bearer(token)).status_code == 401


def test_analyses_lists_only_the_callers_own(clients, http):
    seed_demo_analyses(ApiStore(), "user-1", clock.now())
    seed_demo_analyses(ApiStore(), "user-2", clock.now())
    minted = mint(clients, "c1", user_id="user-1", scope="read:analysis")
    response = http.get("/v1/analyses", headers=bearer(minted.access_token))
    assert response.status_code == 200
    analyses = json.loads(response.body)["analyses"]
    assert len(analyses) == 2
    assert {a["repository"] for a in analyses} == {"github.com/clipron/demo-service", "github.com/clipron/demo-web"}
    own_ids = {a.analysis_id for a in ApiStore().list_analyses("user-1")}
    assert {a["id"] for a in analyses} == own_ids
    nobody = mint(clients, "c1", user_id="user-3", scope="read:analysis")
    assert json.loads(http.get("/v1/analyses", headers=bearer(nobody.access_token)).body) == {"analyses": []}


def test_create_project_returns_201_and_stores_it(clients, http):
    minted = mint(clients, "c1", scope="write:project")
    response = create_project(http, minted.access_token, {"name": "  Backend  ", "description": "the API"})
    assert response.status_code == 201
    body = json.loads(response.body)
    assert body["name"] == "Backend" and body["description"] == "the API" and body["id"].startswith("prj_")
    stored = list_projects("user-1")
    assert [(p.project_id, p.name) for p in stored] == [(body["id"], "Backend")]
    assert create_project(http, minted.access_token, {"name": "n" * 100, "description": "d" * 1000}).status_code == 201


INVALID_PROJECTS = [
    ({}, "name"), ({"name": ""}, "name"), ({"name": "   "}, "name"), ({"name": "n" * 101}, "name"),
    ({"name": 5}, "name"), ({"name": "ok", "description": "d" * 1001}, "description"),
    ({"name": "ok", "description": ["x"]}, "description"),
    ({"name": "ok", "owner": "someone"}, None),  # an unknown member's name is not echoed
    ([{"name": "ok"}], None), (b"{not json", None), (b"\xff\xfe", None), (b"", None),
]


def test_create_project_validates_the_body(clients, http):
    minted = mint(clients, "c1", scope="write:project")
    for body, field in INVALID_PROJECTS:
        response = create_project(http, minted.access_token, body)
        assert response.status_code == 400, body
        error = json.loads(response.body)
        assert error["error"] == "invalid_request" and error["error_description"], body
        assert error.get("field") == field, body
    assert list_projects("user-1") == []


def test_create_project_needs_a_json_body(clients, http):
    minted = mint(clients, "c1", scope="write:project")
    response = create_project(http, minted.access_token, b"name=x", "application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "application/json" in json.loads(response.body)["error_description"]


def test_offline_validation_trade_off_a_revoked_grants_token_works_until_exp(clients, http):
    """Pinned on purpose (README): /v1 never reads DynamoDB; introspection sees the revocation at once."""
    minted = mint(clients, "c1")
    clients.store.revoke_grant("c1", minted.grant_id)
    assert http.get("/v1/me", headers=bearer(minted.access_token)).status_code == 200
    assert json.loads(introspect(http, minted.access_token).body) == {"active": False}
    clock.travel(clients.settings.access_token_seconds)
    assert http.get("/v1/me", headers=bearer(minted.access_token)).status_code == 401


def test_protected_resource_metadata(clients, http):
    response = http.get("/.well-known/oauth-protected-resource/v1")
    assert response.status_code == 200
    assert json.loads(response.body) == {
        "resource": clients.settings.api_audience,
        "authorization_servers": [clients.settings.issuer],
        "scopes_supported": ["read:analysis", "read:project", "write:analysis", "write:project"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Clipron API",
    }


def test_authorization_server_metadata_lists_revocation_and_introspection(clients, http):
    metadata = json.loads(http.get("/.well-known/oauth-authorization-server").body)
    issuer = clients.settings.issuer
    assert metadata["revocation_endpoint"] == issuer + "/revoke"
    assert metadata["introspection_endpoint"] == issuer + "/introspect"
    assert metadata["revocation_endpoint_auth_methods_supported"] == [
        "client_secret_basic", "client_secret_post", "none"]
    assert metadata["introspection_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]


class CallCounter:
    """Counts AWS API calls on the shared DynamoDB connection and on the KMS client (botocore hooks)."""

    def __init__(self, services) -> None:
        self.calls: Counter[str] = Counter()
        self.clients = [shared_connection().client, services.kms()]

    def __enter__(self) -> CallCounter:
        for client in self.clients:
            client.meta.events.register("before-call", self.count)
        return self

    def __exit__(self, *_: object) -> None:
        for client in self.clients:
            client.meta.events.unregister("before-call", self.count)

    def count(self, model, **_: object) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1


def test_call_budget_v1_check_makes_no_call_and_introspection_reads_by_key(clients, http):
    minted = mint(clients, "c1", scope="read:analysis")
    machine = client_token(clients, "c1")
    http.get("/v1/me", headers=bearer(minted.access_token))  # warm: key ring and client caches
    introspect(http, minted.access_token)

    with CallCounter(clients) as counter:
        assert http.get("/v1/me", headers=bearer(minted.access_token)).status_code == 200
        assert http.get("/v1/me", headers={"Authorization": "Bearer x.y.z"}).status_code == 401
    assert counter.calls == Counter()

    with CallCounter(clients) as counter:
        assert http.get("/v1/analyses", headers=bearer(minted.access_token)).status_code == 200
    assert counter.calls == Counter({"dynamodb.Query": 1})  # the data itself; the check made none

    with CallCounter(clients) as counter:
        assert json.loads(introspect(http, minted.access_token).body)["active"] is True
    # the two client-authentication throttle counters (client+source, source) in one BatchGetItem, then
    # grant, client, user and consent in another
    assert counter.calls == Counter({"dynamodb.BatchGetItem": 2})

    with CallCounter(clients) as counter:
        assert json.loads(introspect(http, machine).body)["active"] is True
    # the throttle counters, then its client (deleted: inactive)
    assert counter.calls == Counter({"dynamodb.BatchGetItem": 1, "dynamodb.GetItem": 1})


def test_the_local_run_seeds_demo_analyses_for_the_demo_user(clients, http):
    from chalicelib.local import DEFAULTS, seed

    seed(clients, dict(DEFAULTS))
    user_id = clients.store.find_user_id(DEFAULTS["DEMO_EMAIL"])
    minted = mint(clients, DEFAULTS["DEMO_CLIENT_ID"], user_id=user_id, scope="read:analysis")
    response = http.get("/v1/analyses", headers=bearer(minted.access_token))
    assert response.status_code == 200
    assert len(json.loads(response.body)["analyses"]) == 2
