"""Fixtures for the RFC 8707 / RFC 8693 tests: two resource servers besides the Clipron API, the
client acting for the MCP one (allowed to exchange tokens), and helpers to decode tokens."""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode
from dataclasses import dataclass
from typing import Any

from chalicelib import clock
from chalicelib.oauth.grants import TOKEN_EXCHANGE
from chalicelib.oauth.resource_servers import new_resource_server
from tests.token_helpers import World, make_world

MCP = "https://mcp.example/mcp"
OTHER = "https://other.example/api"
API = "http://127.0.0.1:8000/v1"
MCP_SCOPES = {"read:analysis": "Read your analyses through the MCP tools", "write:project": "Create projects"}


@dataclass
class ResourceWorld:
    world: World
    mcp_client: Any  # tests.token_helpers.Client acting for MCP, allowed to exchange
    other_client: Any  # acting for OTHER, not allowed to exchange


def make_resource_world(services, mcp_lifetime: int = 600) -> ResourceWorld:
    world = make_world(services)
    mcp_client = world.add_client("MCPS", [], grant_types=[TOKEN_EXCHANGE])
    other_client = world.add_client("OTHERS", [], grant_types=["client_credentials"])
    now = clock.now()
    services.store.create_resource_server(
        new_resource_server(MCP, "Demo MCP", MCP_SCOPES, mcp_lifetime, mcp_client.client_id, now))
    services.store.create_resource_server(
        new_resource_server(OTHER, "Other API", {"read:project": "See projects"}, 300, other_client.client_id, now))
    return ResourceWorld(world, mcp_client, other_client)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
