"""RFC 8707 resource indicators: the token's audience is the resource asked for, limited to what it accepts;
a token for one resource is refused by every other one (the Clipron API included)."""

from __future__ import annotations

import json

import pytest

from chalicelib.oauth.errors import InvalidToken
from tests.authorize_support import (
    V,
    add_client,
    add_user,
    assert_redirect_error,
    az,
    consent_page,
    decide,
    response_params,
    signed_in_browser,
)
from tests.resource_support import API, MCP, OTHER, claims_of, make_resource_world
from tests.token_helpers import assert_error, auth_for, basic, body, exchange, post_token, refresh, tokens_of

pytestmark = pytest.mark.store("memory")


@pytest.fixture
def rw(aws):
    return make_resource_world(aws)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_code_for_a_resource_gives_a_token_only_that_resource_accepts(rw, http, aws):
    c1 = rw.world.clients["C1"]
    code = rw.world.issue_code(c1, scope="read:analysis write:analysis", resources=[MCP])
    tokens = tokens_of(exchange(http, c1, code, resource=MCP))
    claims = claims_of(tokens["access_token"])
    assert claims["aud"] == MCP
    assert tokens["scope"] == claims["scope"] == "read:analysis"  # write:analysis is not an MCP scope
    assert tokens["expires_in"] == 600 == claims["exp"] - claims["iat"]  # the resource's own lifetime
    aws.access_tokens.verify(tokens["access_token"], MCP)
    for elsewhere in (OTHER, API):  # resource B refuses a token for resource A
        with pytest.raises(InvalidToken):
            aws.access_tokens.verify(tokens["access_token"], elsewhere)
    refused = http.get("/v1/me", headers=bearer(tokens["access_token"]))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_no_resource_keeps_the_clipron_api(rw, http):
    c1 = rw.world.clients["C1"]
    tokens = tokens_of(exchange(http, c1, rw.world.issue_code(c1)))
    assert claims_of(tokens["access_token"])["aud"] == API
    assert http.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 200


@pytest.mark.parametrize(
    "granted, asked",
    [
        ([MCP], API),  # a resource the grant does not cover, even the default one
        ([], MCP),  # a grant made without resource covers only the Clipron API
        ([MCP], "https://unknown.example/x"),
        ([MCP], "not a uri"),
        ([MCP], ""),
        ([MCP], MCP + "#frag"),
    ],
)
def test_code_exchange_for_a_resource_outside_the_grant_is_invalid_target(rw, http, granted, asked):
    c1 = rw.world.clients["C1"]
    code = rw.world.issue_code(c1, resources=granted)
    payload = assert_error(exchange(http, c1, code, resource=asked), 400, "invalid_target")
    if asked:
        assert asked not in payload.get("error_description", "")  # fixed descriptions, never the input
    tokens_of(exchange(http, c1, code, resource=None))  # the code was not spent by the refused request


def test_several_resources_at_the_token_endpoint_are_invalid_target_and_spend_nothing(rw, http):
    """RFC 8707 §2 lets a token request repeat `resource`; a token here names one audience, so two targets are
    refused as a whole (invalid_target), never answered for one of them. The same one twice is one."""
    c1, cc1 = rw.world.clients["C1"], rw.world.clients["CC1"]
    code = rw.world.issue_code(c1, scope="read:analysis read:project", resources=[MCP, OTHER])
    form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", c1.redirect_uris[0]),
            ("code_verifier", V)]
    for targets in ([MCP, OTHER], [OTHER, MCP, OTHER]):
        resources = [("resource", target) for target in targets]
        assert_error(post_token(http, form + resources, auth_for(c1)), 400, "invalid_target")
    first = tokens_of(post_token(http, form + [("resource", OTHER), ("resource", OTHER)], auth_for(c1)))
    assert claims_of(first["access_token"])["aud"] == OTHER  # the code was not spent by the refused requests
    again = [("grant_type", "refresh_token"), ("refresh_token", first["refresh_token"])]
    assert_error(post_token(http, again + [("resource", MCP), ("resource", OTHER)], auth_for(c1)), 400,
                 "invalid_target")
    machine = [("grant_type", "client_credentials"), ("resource", OTHER), ("resource", API)]
    assert_error(post_token(http, machine, auth_for(cc1)), 400, "invalid_target")
    exchange_twice = [("grant_type", "authorization_code"), ("code", "x"), ("code", "y")]
    assert_error(post_token(http, exchange_twice, auth_for(c1)), 400, "invalid_request")  # others stay single


def test_refresh_may_name_any_resource_of_the_grant_never_a_new_one(rw, http):
    c1 = rw.world.clients["C1"]
    code = rw.world.issue_code(c1, scope="read:analysis read:project", resources=[MCP, OTHER])
    first = tokens_of(exchange(http, c1, code))
    assert claims_of(first["access_token"])["aud"] == MCP  # no resource: the grant's first
    other = tokens_of(refresh(http, c1, first["refresh_token"], resource=OTHER))
    assert claims_of(other["access_token"])["aud"] == OTHER and other["scope"] == "read:project"
    assert other["expires_in"] == 300
    for new in (API, "https://unknown.example/x"):
        assert_error(refresh(http, c1, other["refresh_token"], resource=new), 400, "invalid_target")
    back = tokens_of(refresh(http, c1, other["refresh_token"], resource=MCP))
    assert claims_of(back["access_token"])["aud"] == MCP and back["scope"] == "read:analysis"


def test_a_refresh_repeated_within_the_grace_window_must_name_the_same_resource(rw, http):
    c1 = rw.world.clients["C1"]
    code = rw.world.issue_code(c1, scope="read:analysis read:project", resources=[MCP, OTHER])
    first = tokens_of(exchange(http, c1, code))
    rotated = tokens_of(refresh(http, c1, first["refresh_token"], resource=OTHER))
    repeated = tokens_of(refresh(http, c1, first["refresh_token"], resource=OTHER))
    assert (repeated["access_token"], repeated["refresh_token"]) == (rotated["access_token"], rotated["refresh_token"])
    assert_error(refresh(http, c1, first["refresh_token"], resource=MCP), 400, "invalid_grant")


def test_client_credentials_for_a_resource(rw, http):
    cc1 = rw.world.clients["CC1"]  # allowed read:analysis read:project
    form = {"grant_type": "client_credentials", "resource": OTHER}
    tokens = tokens_of(post_token(http, form, auth_for(cc1)))
    assert claims_of(tokens["access_token"])["aud"] == OTHER and tokens["scope"] == "read:project"
    assert_error(post_token(http, {**form, "scope": "read:analysis"}, auth_for(cc1)), 400, "invalid_scope")
    assert_error(post_token(http, {**form, "resource": "https://unknown.example/x"}, auth_for(cc1)), 400,
                 "invalid_target")


def introspect(http, client_id: str, secret: str, token: str) -> dict:
    response = http.post("/introspect", headers={"Content-Type": "application/x-www-form-urlencoded",
                                                 **basic(client_id, secret)}, body=f"token={token}")
    assert response.status_code == 200, response.body
    return body(response)


def test_introspection_and_revocation_work_for_every_resource(rw, http):
    c1, c2 = rw.world.clients["C1"], rw.world.clients["C2"]
    tokens = tokens_of(exchange(http, c1, rw.world.issue_code(c1, resources=[MCP]), resource=MCP))
    access = tokens["access_token"]
    answer = introspect(http, c1.client_id, c1.secret, access)
    assert answer["active"] is True and answer["aud"] == MCP
    mcp = rw.mcp_client  # the client acting for MCP learns about MCP's tokens
    assert introspect(http, mcp.client_id, mcp.secret, access)["active"] is True
    other = rw.other_client  # the client acting for another resource does not
    assert introspect(http, other.client_id, other.secret, access) == {"active": False}
    assert introspect(http, c2.client_id, c2.secret, access) == {"active": False}
    revoked = http.post("/revoke", headers={"Content-Type": "application/x-www-form-urlencoded", **auth_for(c1)},
                        body=f"token={access}")
    assert revoked.status_code == 200
    assert introspect(http, c1.client_id, c1.secret, access) == {"active": False}
    assert_error(refresh(http, c1, tokens["refresh_token"]), 400, "invalid_grant")


def test_a_deleted_resource_server_gets_no_more_tokens(rw, http, aws):
    c1 = rw.world.clients["C1"]
    code = rw.world.issue_code(c1, resources=[MCP])
    assert aws.store.delete_resource_server(MCP) is True
    aws.resources._cache.clear()  # another instance's cache expires within CLIENT_CACHE_SECONDS
    assert_error(exchange(http, c1, code, resource=MCP), 400, "invalid_target")


# --- the front channel ------------------------------------------------------------------------


@pytest.fixture
def browser(http, rw, aws):
    add_client(aws.store, "c1", ["https://c1.example/cb"], scopes=["read:analysis", "write:project", "read:project"])
    add_user(aws.store)
    return signed_in_browser(http)


def test_the_consent_page_names_the_resource_and_the_code_is_bound_to_it(browser, http, aws):
    page = consent_page(browser, az(scope="read:analysis write:project", extra=[("resource", MCP)]))
    text = page.body.decode()
    assert "Demo MCP" in text and MCP in text
    assert "Read your analyses through the MCP tools" in text  # the resource's own wording
    params = response_params(decide(browser, page, "allow"))
    form = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": "https://c1.example/cb",
            "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "resource": MCP}
    tokens = tokens_of(post_token(http, form, basic("c1", "c1-secret")))
    assert claims_of(tokens["access_token"])["aud"] == MCP
    assert tokens["scope"] == "read:analysis write:project"


def test_consent_to_one_resource_is_not_consent_to_another(browser):
    page = consent_page(browser, az(scope="read:analysis"))  # the Clipron API
    assert "code" in response_params(decide(browser, page, "allow"))
    silent = browser.get(az(scope="read:analysis", prompt="none", extra=[("resource", MCP)]))
    assert_redirect_error(silent, "consent_required")
    page = consent_page(browser, az(scope="read:analysis", extra=[("resource", MCP)]))
    assert "code" in response_params(decide(browser, page, "allow"))
    for resource in ([("resource", MCP)], []):  # both remembered now
        assert "code" in response_params(browser.get(az(scope="read:analysis", prompt="none", extra=resource)))


@pytest.mark.parametrize(
    "resources",
    [
        ["https://unknown.example/x"],
        ["mcp"],  # relative
        [MCP + "#f"],
        [""],
        [MCP, "https://unknown.example/x"],
        [MCP, OTHER, API, "https://a.example/1", "https://a.example/2", "https://a.example/3"],  # too many
    ],
)
def test_authorize_with_an_unknown_or_malformed_resource_is_invalid_target(browser, resources):
    response = browser.get(az(extra=[("resource", r) for r in resources]))
    params = assert_redirect_error(response, "invalid_target")
    assert not any(r and r in params.get("error_description", "") for r in resources)


def test_authorize_scope_is_limited_to_what_the_resources_accept(browser):
    assert_redirect_error(browser.get(az(scope="read:project", extra=[("resource", MCP)])), "invalid_scope")
    # OTHER accepts only read:project: every named resource must accept some requested scope
    assert_redirect_error(browser.get(az(scope="read:analysis", extra=[("resource", MCP), ("resource", OTHER)])),
                          "invalid_scope")
    page = consent_page(browser, az("scope", extra=[("resource", MCP)]))  # no scope: what the resource accepts
    assert "write:project" in page.body.decode() and "read:project" not in page.body.decode()


def test_metadata_advertises_token_exchange(http):
    metadata = body(http.get("/.well-known/oauth-authorization-server"))
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in metadata["grant_types_supported"]


def test_the_cli_manages_resource_servers(aws, capsys):
    from chalicelib import cli

    def run(*argv):
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("create-resource-server", "--identifier", "https://tools.example/mcp", "--name", "Tools",
                       "--scope", "read:analysis", "--scope", "tools:run=Run the tools",
                       "--access-token-seconds", "120")
    assert code == 0 and json.loads(out)["scopes"]["tools:run"] == "Run the tools"
    code, out, _ = run("list-resource-servers")
    listed = [server["identifier"] for server in json.loads(out)]
    assert listed == [API, "https://tools.example/mcp"]
    assert aws.store.get_resource_server("https://tools.example/mcp").access_token_seconds == 120
    for argv, message in [
        (["--identifier", "https://tools.example/mcp", "--name", "T", "--scope", "read:analysis"], "already exists"),
        (["--identifier", "https://t.example/m#x", "--name", "T", "--scope", "read:analysis"], "fragment"),
        (["--identifier", "https://t.example/m", "--name", "T", "--scope", "nope"], "description"),
        (["--identifier", "https://t.example/m", "--name", "T", "--scope", "read:analysis", "--client-id", "ghost"],
         "no confidential client"),
        (["--identifier", API, "--name", "T", "--scope", "read:analysis"], "built in"),
    ]:
        code, out, err = run("create-resource-server", *argv)
        assert code == 2 and message in err, err
    assert run("delete-resource-server", "--identifier", "https://tools.example/mcp")[0] == 0
    code, _, err = run("delete-resource-server", "--identifier", "https://tools.example/mcp")
    assert code == 2 and "no resource server" in err
    assert run("delete-resource-server", "--identifier", API)[0] == 2


def test_the_cli_allows_a_confidential_client_to_exchange_tokens(aws, capsys):
    from chalicelib import cli

    code = cli.main(["create-client", "--name", "MCP", "--type", "machine", "--token-exchange", "--client-id", "x1"])
    assert code == 0
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in aws.store.get_client("x1").grant_types
    code = cli.main(["create-client", "--name", "N", "--type", "native", "--redirect-uri", "http://127.0.0.1/cb",
                     "--token-exchange"])
    assert code == 2 and "confidential" in capsys.readouterr().err
