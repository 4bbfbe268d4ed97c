"""The `open` registration policy: anonymous RFC 7591 registration of public clients, and its limits."""

from __future__ import annotations

import dataclasses
import json

import pytest

from chalicelib import clock, wiring
from chalicelib.crypto.secrets import digest
from chalicelib.oauth.dynamic_registration import Registrar
from chalicelib.oauth.errors import RateLimited
from chalicelib.records import RegistrationTokenRecord
from tests.authorize_support import CH, add_user
from tests.store_support import scan_kinds
from tests.worlds import reconfigured

pytestmark = pytest.mark.store("memory")

JSON = {"Content-Type": "application/json"}
AGENT = {"client_name": "Agent", "redirect_uris": ["http://127.0.0.1:33418/callback"],
         "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none",
         "application_type": "native"}
HOUR = 3600


@pytest.fixture
def open_policy(aws, http):
    reconfigured(aws, registration_policy="open", open_registration_idle_seconds=HOUR)
    return http


def register(http, metadata, headers=None):
    return http.post("/register", headers={**JSON, **(headers or {})}, body=json.dumps(metadata).encode())


def body(response):
    return json.loads(response.body)


def test_the_token_policy_still_demands_an_initial_access_token(aws, http):
    assert aws.settings.registration_policy == "token"  # deployed stages' default
    response = register(http, AGENT)
    assert response.status_code == 401 and body(response)["error"] == "invalid_token"


def test_an_agent_registers_a_public_client_with_nothing_but_its_metadata(aws, open_policy):
    response = register(open_policy, AGENT)
    assert response.status_code == 201
    result = body(response)
    assert result["token_endpoint_auth_method"] == "none" and "client_secret" not in result
    assert result["redirect_uris"] == AGENT["redirect_uris"]
    assert result["registration_access_token"]  # RFC 7592: it can read, update and delete itself
    stored = aws.store.get_client(result["client_id"])
    assert not stored.verified and stored.owner_id is None
    assert 0 <= clock.now() + HOUR - stored.expires_at <= 5  # registered a moment ago


def test_naming_no_scope_gets_read_scopes_only_never_a_write_scope(aws, open_policy):
    result = body(register(open_policy, AGENT))
    assert result["scope"] and "write:" not in result["scope"]
    named = body(register(open_policy, {**AGENT, "scope": "read:analysis write:project"}))
    assert named["scope"] == "read:analysis write:project"  # asked for: consent still asks the user


def test_an_absent_auth_method_registers_a_public_client(open_policy):
    metadata = {k: v for k, v in AGENT.items() if k != "token_endpoint_auth_method"}
    response = register(open_policy, metadata)
    assert response.status_code == 201 and body(response)["token_endpoint_auth_method"] == "none"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "private_key_jwt"])
def test_a_confidential_client_needs_the_initial_access_token(aws, open_policy, method):
    response = register(open_policy, {**AGENT, "token_endpoint_auth_method": method,
                                      "redirect_uris": ["https://agent.example/cb"], "application_type": "web"})
    assert response.status_code == 400 and body(response)["error"] == "invalid_client_metadata"
    assert "client" not in scan_kinds(aws.store)


def test_with_an_initial_access_token_confidential_registration_still_works(aws, open_policy):
    now = clock.now()
    aws.store.put_registration_token(RegistrationTokenRecord(digest("iat"), now, now + HOUR, "tests"))
    web = {"client_name": "Web", "redirect_uris": ["https://web.example/cb"]}
    response = register(open_policy, web, {"Authorization": "Bearer iat"})
    assert response.status_code == 201 and body(response)["client_secret"]
    assert aws.store.get_client(body(response)["client_id"]).expires_at is None  # not an expiring open client
    bad = register(open_policy, web, {"Authorization": "Bearer wrong"})  # a token that is sent must be valid
    assert bad.status_code == 401 and body(bad)["error"] == "invalid_token"


@pytest.mark.parametrize(("change", "error"), [
    ({"redirect_uris": ["https://agent.example/cb"]}, "invalid_redirect_uri"),  # native: loopback or own scheme
    ({"application_type": "web", "redirect_uris": ["cursor://anysphere.cursor/cb"]}, "invalid_redirect_uri"),
    ({"application_type": "desktop"}, "invalid_client_metadata"),
    ({"redirect_uris": ["javascript:alert(1)//"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["data:text/html,x"]}, "invalid_redirect_uri"),
    ({"redirect_uris": ["file:///etc/passwd"]}, "invalid_redirect_uri"),
    ({"grant_types": ["client_credentials"], "response_types": []}, "invalid_client_metadata"),
])
def test_application_type_and_redirect_rules(open_policy, change, error):
    response = register(open_policy, {**AGENT, **change})
    assert response.status_code == 400 and body(response)["error"] == error


@pytest.mark.parametrize("uris", [
    ["cursor://anysphere.cursor-retrieval/oauth/user-clipron/callback"],
    ["vscode://vscode.github-authentication/did-authenticate", "http://127.0.0.1/cb"],
    ["com.example.agent:/oauth2redirect"],
])
def test_native_agents_private_use_schemes_are_accepted(open_policy, uris):
    response = register(open_policy, {**AGENT, "redirect_uris": uris})
    assert response.status_code == 201 and body(response)["redirect_uris"] == uris


def test_a_web_agent_registers_https_redirects(open_policy):
    response = register(open_policy, {**AGENT, "application_type": "web",
                                      "redirect_uris": ["https://claude.example/api/mcp/auth_callback"]})
    assert response.status_code == 201


def test_registrations_are_limited_per_source_address(aws, open_policy):
    reconfigured(wiring.services(), open_registration_per_source_per_hour=3)
    assert [register(open_policy, AGENT).status_code for _ in range(3)] == [201, 201, 201]
    refused = register(open_policy, AGENT)
    # RFC 7591 §3.2.2 has no code for "not now": temporarily_unavailable, 429 with Retry-After (RFC 6585)
    assert refused.status_code == 429 and body(refused)["error"] == "temporarily_unavailable"
    assert 0 < int(refused.headers["Retry-After"]) <= HOUR
    assert scan_kinds(aws.store)["client"] == 3
    clock.travel(HOUR)
    assert register(open_policy, AGENT).status_code == 201  # a new window


def test_the_limit_is_per_address_and_overall(aws):
    settings = dataclasses.replace(aws.settings, registration_policy="open", open_registration_per_source_per_hour=2,
                                   open_registration_per_hour=3)
    registrar = Registrar(aws.store, aws.clients, settings, clock.now)
    for _ in range(2):
        assert registrar.authorise_registration(None, "198.51.100.1") is False
    with pytest.raises(RateLimited):
        registrar.authorise_registration(None, "198.51.100.1")
    registrar.authorise_registration(None, "198.51.100.2")  # another address has its own budget …
    with pytest.raises(RateLimited):
        registrar.authorise_registration(None, "198.51.100.3")  # … until the overall ceiling


def authorize(http, client_id: str):
    return http.get("/authorize?response_type=code&client_id=" + client_id +
                    "&redirect_uri=http://127.0.0.1:33418/callback&state=s&code_challenge_method=S256"
                    "&code_challenge=" + CH)


def test_an_unused_open_client_expires_and_use_keeps_it_alive(aws, open_policy):
    client_id = body(register(open_policy, AGENT))["client_id"]
    registered_at = clock.now()
    clock.travel(HOUR // 2 + 60)  # past half its idle lifetime: the next use pushes the expiry
    used_at = clock.now()
    assert authorize(open_policy, client_id).status_code == 302
    assert used_at + HOUR <= aws.store.get_client(client_id).expires_at <= clock.now() + HOUR
    clock.travel(HOUR // 2 + 60)  # past the first expiry, still alive because it was used
    assert clock.now() > registered_at + HOUR
    aws.clients._cache.clear()
    assert authorize(open_policy, client_id).status_code == 302
    clock.travel(HOUR + 1)  # then unused for its whole idle lifetime: gone
    aws.clients._cache.clear()
    response = authorize(open_policy, client_id)
    assert response.status_code == 400 and "Location" not in response.headers
    assert aws.store.get_client(client_id) is None


def test_use_within_the_first_half_of_the_lifetime_writes_nothing(aws, open_policy, monkeypatch):
    client_id = body(register(open_policy, AGENT))["client_id"]
    touched = []
    monkeypatch.setattr(aws.store, "touch_client", lambda *args: touched.append(args))
    clock.travel(60)
    aws.clients._cache.clear()
    assert authorize(open_policy, client_id).status_code == 302
    assert touched == []


def test_the_consent_page_marks_an_open_client_unverified(aws, open_policy):
    from tests.authorize_support import Browser, consent_page, sign_in

    client_id = body(register(open_policy, AGENT))["client_id"]
    add_user(aws.store)
    browser = Browser(open_policy)
    assert sign_in(browser).status_code == 200
    path = ("/authorize?response_type=code&scope=read:analysis&client_id=" + client_id +
            "&redirect_uri=http://127.0.0.1:33418/callback&state=s&code_challenge_method=S256&code_challenge=" + CH)
    assert 'id="unverified"' in consent_page(browser, path).body.decode()


def test_an_agent_may_register_for_scopes_an_operators_resource_server_accepts(aws, open_policy):
    """The MCP SDK registers with the scopes the MCP server's metadata lists; they need not be in the catalogue."""
    from chalicelib.oauth.resource_servers import new_resource_server

    unknown = register(open_policy, {**AGENT, "scope": "tools:run"})
    assert unknown.status_code == 400 and body(unknown)["error"] == "invalid_client_metadata"
    server = new_resource_server("https://mcp.example/mcp", "Tools", {"tools:run": "Run the tools"}, 600, None,
                                 clock.now())
    aws.store.create_resource_server(server)
    response = register(open_policy, {**AGENT, "scope": "read:analysis tools:run"})
    assert response.status_code == 201 and body(response)["scope"] == "read:analysis tools:run"
