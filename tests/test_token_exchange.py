"""RFC 8693 token exchange: the client acting for an MCP server trades the user's token for its resource
for a token for another resource — same user, narrower or equal scope, `act` names it, never longer-lived,
and never once the user's grant is revoked."""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.oauth.grants import TOKEN_EXCHANGE
from tests.resource_support import API, MCP, OTHER, claims_of, make_resource_world
from tests.token_helpers import assert_error, auth_for, aws_calls, exchange, post_token, refresh, tokens_of

pytestmark = pytest.mark.store("memory")

ACCESS = "urn:ietf:params:oauth:token-type:access_token"


@pytest.fixture
def rw(aws):
    return make_resource_world(aws)


def agent_token(rw, http, resources=(MCP,), scope="read:analysis write:project") -> dict:
    """The agent (C1) signs the user in for the MCP resource: what the MCP server receives."""
    c1 = rw.world.clients["C1"]
    code = rw.world.issue_code(c1, scope=scope, resources=list(resources))
    return tokens_of(exchange(http, c1, code))


def trade(http, client, subject: str, **params: str | None):
    form = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS, **params}
    return post_token(http, {k: v for k, v in form.items() if v is not None}, auth_for(client))


def test_the_mcp_server_gets_a_token_for_the_api_on_the_users_behalf(rw, http, aws):
    subject = agent_token(rw, http)["access_token"]
    answer = tokens_of(trade(http, rw.mcp_client, subject, resource=API, scope="read:analysis"))
    assert answer["issued_token_type"] == ACCESS and answer["token_type"] == "Bearer"
    assert answer["scope"] == "read:analysis" and "refresh_token" not in answer
    before, after = claims_of(subject), claims_of(answer["access_token"])
    assert after["aud"] == API and after["sub"] == before["sub"]
    assert after["client_id"] == rw.mcp_client.client_id
    assert after["act"] == {"sub": "client:" + rw.mcp_client.client_id, "client_id": rw.mcp_client.client_id}
    assert after["exp"] <= before["exp"]
    me = http.get("/v1/me", headers={"Authorization": "Bearer " + answer["access_token"]})
    assert me.status_code == 200, me.body
    # the subject token itself (for MCP) is refused by the API: exchange is the only way through
    assert http.get("/v1/me", headers={"Authorization": "Bearer " + subject}).status_code == 401


def test_no_scope_means_all_that_fit_and_audience_works_like_resource(rw, http):
    subject = agent_token(rw, http)["access_token"]
    answer = tokens_of(trade(http, rw.mcp_client, subject, audience=API))
    assert answer["scope"] == "read:analysis write:project"
    assert claims_of(answer["access_token"])["aud"] == API
    default = tokens_of(trade(http, rw.mcp_client, subject))  # no target: the Clipron API
    assert claims_of(default["access_token"])["aud"] == API


def test_the_new_token_never_outlives_the_subject_token(rw, http):
    subject = agent_token(rw, http)["access_token"]  # MCP tokens live 600 s, the API's 900 s
    clock.travel(500)
    try:
        answer = tokens_of(trade(http, rw.mcp_client, subject, resource=API))
    finally:
        clock.reset()
    claims = claims_of(answer["access_token"])
    assert claims["exp"] <= claims_of(subject)["exp"] and answer["expires_in"] <= 100


@pytest.mark.parametrize("scope", ["write:analysis", "read:analysis read:project", "read:project"])
def test_a_widened_scope_is_invalid_scope(rw, http, scope):
    subject = agent_token(rw, http)["access_token"]  # read:analysis write:project
    payload = assert_error(trade(http, rw.mcp_client, subject, resource=API, scope=scope), 400, "invalid_scope")
    assert scope not in payload.get("error_description", "")


def test_a_scope_the_target_does_not_accept_is_invalid_scope(rw, http):
    subject = agent_token(rw, http)["access_token"]
    assert_error(trade(http, rw.mcp_client, subject, resource=OTHER), 400, "invalid_scope")  # OTHER: read:project


def test_a_subject_token_for_another_audience_is_refused(rw, http, aws):
    api_token = agent_token(rw, http, resources=())["access_token"]  # aud: the Clipron API, not MCP
    assert_error(trade(http, rw.mcp_client, api_token, resource=OTHER), 400, "invalid_request")
    other = agent_token(rw, http, resources=(OTHER,), scope="read:project")["access_token"]
    assert_error(trade(http, rw.mcp_client, other, resource=API), 400, "invalid_request")
    machine = tokens_of(post_token(http, {"grant_type": "client_credentials", "resource": MCP},
                                   auth_for(rw.world.clients["CC1"])))["access_token"]
    assert_error(trade(http, rw.mcp_client, machine, resource=API), 400, "invalid_request")  # no user


def test_a_revoked_subject_is_refused(rw, http):
    tokens = agent_token(rw, http)
    c1 = rw.world.clients["C1"]
    assert tokens_of(trade(http, rw.mcp_client, tokens["access_token"], resource=API))
    revoked = http.post("/revoke", headers={"Content-Type": "application/x-www-form-urlencoded", **auth_for(c1)},
                        body="token=" + tokens["refresh_token"])
    assert revoked.status_code == 200
    assert_error(trade(http, rw.mcp_client, tokens["access_token"], resource=API), 400, "invalid_request")


def test_an_exchanged_token_shares_the_users_grant(rw, http):
    tokens = agent_token(rw, http)
    exchanged = tokens_of(trade(http, rw.mcp_client, tokens["access_token"], resource=API))["access_token"]
    mcp = rw.mcp_client
    form = {"Content-Type": "application/x-www-form-urlencoded", **auth_for(mcp)}

    def active() -> bool:
        response = http.post("/introspect", headers=form, body="token=" + exchanged)
        return response.status_code == 200 and tokens_of(response)["active"]

    assert active()
    c1 = rw.world.clients["C1"]
    assert_error(refresh(http, c1, tokens["refresh_token"], resource=API), 400, "invalid_target")
    http.post("/revoke", headers={"Content-Type": "application/x-www-form-urlencoded", **auth_for(c1)},
              body="token=" + tokens["refresh_token"])
    assert not active()


def test_a_client_not_allowed_to_exchange_is_refused(rw, http):
    subject = agent_token(rw, http)["access_token"]
    # acts for OTHER but may not exchange; C2 may do neither
    for client in (rw.other_client, rw.world.clients["C2"]):
        assert_error(trade(http, client, subject, resource=API), 400, "unauthorized_client")
    public = rw.world.clients["P1"]
    form = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS,
            "client_id": public.client_id}
    assert_error(post_token(http, form), 401, "invalid_client")


def test_an_allowed_client_exchanges_only_tokens_of_its_own_resource(rw, http, aws):
    rogue = rw.world.add_client("ROGUE", [], grant_types=[TOKEN_EXCHANGE])  # allowed, but acts for no resource
    subject = agent_token(rw, http)["access_token"]
    assert_error(trade(http, rogue, subject, resource=API), 400, "invalid_request")


@pytest.mark.parametrize(
    "params, error",
    [
        ({"resource": MCP}, "invalid_target"),  # its own audience is no exchange
        ({"resource": "https://unknown.example/x"}, "invalid_target"),
        ({"resource": API, "audience": OTHER}, "invalid_target"),
        ({"subject_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}, "invalid_request"),
        ({"subject_token_type": None}, "invalid_request"),
        ({"subject_token": None}, "invalid_request"),
        ({"subject_token": "not.a.token"}, "invalid_request"),
        ({"actor_token": "x", "actor_token_type": ACCESS}, "invalid_request"),
        ({"requested_token_type": "urn:ietf:params:oauth:token-type:id_token"}, "invalid_request"),
    ],
)
def test_malformed_exchanges(rw, http, params, error):
    subject = agent_token(rw, http)["access_token"]
    form = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject, "subject_token_type": ACCESS, **params}
    response = post_token(http, {k: v for k, v in form.items() if v is not None}, auth_for(rw.mcp_client))
    assert_error(response, 400, error)


@pytest.mark.store("dynamo")  # counts/reads real DynamoDB items
def test_an_exchange_costs_the_grant_read_and_the_throttle_reads_and_no_kms(rw, http, aws):
    subject = agent_token(rw, http)["access_token"]
    assert tokens_of(trade(http, rw.mcp_client, subject, resource=API))  # warm: client and resource cached
    with aws_calls(aws) as calls:
        assert tokens_of(trade(http, rw.mcp_client, subject, resource=API))
    # the client-authentication throttle's two counters (one BatchGetItem), then the grant and what it stands on
    assert calls == ["dynamodb:BatchGetItem", "dynamodb:BatchGetItem"]


def test_revoking_the_app_in_connected_apps_stops_exchanges(rw, http, aws):
    """Withdrawing access (Connected apps) ends the authorization: its tokens can no longer be exchanged."""

    subject = agent_token(rw, http)["access_token"]
    assert tokens_of(trade(http, rw.mcp_client, subject, resource=API))
    c1 = rw.world.clients["C1"]
    aws.developer.revoke_access(rw.world.user_id, c1.client_id)
    assert_error(trade(http, rw.mcp_client, subject, resource=API), 400, "invalid_request")


@pytest.mark.store("dynamo")  # counts/reads real DynamoDB items
def test_the_local_run_seeds_the_demo_mcp_resource_and_its_exchanging_client(aws, http):
    from chalicelib.local import DEFAULTS, seed
    from tests.token_helpers import Client, make_world

    seed(aws, dict(DEFAULTS))
    resource = aws.store.get_resource_server(DEFAULTS["DEMO_MCP_RESOURCE"])
    assert resource.client_id == DEFAULTS["DEMO_MCP_CLIENT_ID"]
    assert sorted(resource.scopes) == ["read:analysis", "write:project"]
    world = make_world(aws)
    c1 = world.clients["C1"]
    code = world.issue_code(c1, scope="read:analysis write:project", resources=[resource.identifier])
    subject = tokens_of(exchange(http, c1, code, resource=resource.identifier))["access_token"]
    demo = Client(DEFAULTS["DEMO_MCP_CLIENT_ID"], DEFAULTS["DEMO_MCP_CLIENT_SECRET"], [],
                  aws.store.get_client(DEFAULTS["DEMO_MCP_CLIENT_ID"]))
    answer = tokens_of(trade(http, demo, subject, resource=API, scope="read:analysis"))
    analyses = http.get("/v1/analyses", headers={"Authorization": "Bearer " + answer["access_token"]})
    assert analyses.status_code == 200
