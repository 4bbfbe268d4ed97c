"""An MCP server protected by Clipron: what an MCP server operator writes (official `mcp` SDK, streamable HTTP).

It is an OAuth 2.0 *resource server* and, for the Clipron API, a *client*; nothing here imports the
authorization server's code:

- RFC 9728 protected-resource metadata at /.well-known/oauth-protected-resource/mcp names Clipron as
  its authorization server, so an agent needs nothing but this server's URL (discovery, registration,
  login and consent, PKCE, `resource`, refresh: the agent's SDK does it all);
- every request's bearer token is a Clipron JWT (RFC 9068) checked against Clipron's JWKS, with
  this server's own resource URL as the audience (a token for the Clipron API or for another MCP
  server is refused), and the scope each tool needs is checked;
- the Clipron API is never called with the agent's token (MCP forbids token passthrough): the tools
  exchange it (RFC 8693) for a token whose audience is the Clipron API, as this server's own
  confidential client that the operator allowed to exchange.

    make run            # terminal 1: Clipron on http://127.0.0.1:8000 (registers this resource)
    make mcp            # terminal 2: this server on http://127.0.0.1:8001/mcp

Settings (environment): CLIPRON_ISSUER (http://127.0.0.1:8000), DEMO_MCP_RESOURCE (this server's
URL, http://127.0.0.1:8001/mcp), CLIPRON_API (the issuer + /v1), MCP_CLIENT_ID / MCP_CLIENT_SECRET
(this server's client for token exchange: the local run's demo-mcp-server / demo-mcp-server-secret).
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import anyio
import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SCOPES = ["read:analysis", "write:project"]  # what this resource accepts (its Clipron resource record says so too)
LEEWAY_SECONDS = 30


@dataclass(frozen=True)
class Config:
    issuer: str
    resource: str
    api: str
    client_id: str
    client_secret: str

    @classmethod
    def from_environment(cls) -> Config:
        issuer = os.environ.get("CLIPRON_ISSUER", "http://127.0.0.1:8000").rstrip("/")
        return cls(
            issuer=issuer,
            resource=os.environ.get("DEMO_MCP_RESOURCE", "http://127.0.0.1:8001/mcp"),
            api=os.environ.get("CLIPRON_API", issuer + "/v1"),
            client_id=os.environ.get("MCP_CLIENT_ID", "demo-mcp-server"),
            client_secret=os.environ.get("MCP_CLIENT_SECRET", "demo-mcp-server-secret"),
        )


class ClipronTokenVerifier:
    """RFC 9068 access tokens: signature by a key in Clipron's JWKS, typ at+jwt, our issuer, OUR audience."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.keys = jwt.PyJWKClient(config.issuer + "/.well-known/jwks.json", cache_keys=True, lifespan=300)

    async def verify_token(self, token: str) -> AccessToken | None:
        return await anyio.to_thread.run_sync(self._verify, token)

    def _verify(self, token: str) -> AccessToken | None:
        try:
            if jwt.get_unverified_header(token).get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
                return None
            key = self.keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["RS256", "ES256", "PS256"], audience=self.config.resource,
                                issuer=self.config.issuer, leeway=LEEWAY_SECONDS,
                                options={"require": ["exp", "iat", "sub", "aud", "iss"]})
        except (jwt.PyJWTError, ValueError):
            return None  # 401 with our resource_metadata in the challenge
        return AccessToken(token=token, client_id=str(claims.get("client_id", "")),
                           scopes=str(claims.get("scope", "")).split(), expires_at=int(claims["exp"]),
                           resource=self.config.resource, subject=str(claims["sub"]),
                           claims={"iss": claims["iss"]})


class ClipronApi:
    """Calls the Clipron API on the user's behalf with a token obtained by RFC 8693 token exchange."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def exchange(self, subject_token: str, scope: str) -> str:
        form = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject_token,
                "subject_token_type": ACCESS_TOKEN_TYPE, "requested_token_type": ACCESS_TOKEN_TYPE,
                "resource": self.config.api, "scope": scope}
        basic = base64.b64encode(f"{urllib.parse.quote(self.config.client_id, safe='')}:"
                                 f"{urllib.parse.quote(self.config.client_secret, safe='')}".encode()).decode()
        status, body = _call("POST", self.config.issuer + "/token", urllib.parse.urlencode(form).encode(),
                             {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})
        if status == 200 and isinstance(body.get("access_token"), str):
            return body["access_token"]
        if body.get("error") in ("unsupported_grant_type", "unauthorized_client"):
            raise ToolError("This Clipron server does not (yet) let this MCP server exchange tokens (RFC 8693): "
                            "the Clipron API cannot be called on your behalf. The MCP token itself is never "
                            "passed through.")
        raise ToolError(f"Clipron refused the token exchange ({body.get('error', status)}).")

    def get(self, path: str, subject_token: str, scope: str) -> Any:
        token = self.exchange(subject_token, scope)
        status, body = _call("GET", self.config.api + path, None, {"Authorization": f"Bearer {token}"})
        if status != 200:
            raise ToolError(f"The Clipron API answered {status} ({body.get('error', 'error')}).")
        return body

    def post(self, path: str, payload: dict[str, Any], subject_token: str, scope: str) -> Any:
        token = self.exchange(subject_token, scope)
        status, body = _call("POST", self.config.api + path, json.dumps(payload).encode(),
                             {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        if status not in (200, 201):
            raise ToolError(f"The Clipron API answered {status} ({body.get('error', 'error')}).")
        return body


def _call(method: str, url: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=data, method=method, headers={"Accept": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:
            return error.code, {}


def caller(scope: str) -> AccessToken:
    """The verified token of this request, which must carry `scope` (the tool's own scope check)."""
    token = get_access_token()
    if token is None:
        raise ToolError("not authenticated")
    if scope not in token.scopes:
        raise ToolError(f"insufficient_scope: this tool needs the scope {scope}")
    return token


def build_server(config: Config) -> MCPServer:
    # plain strings: the SDK's models keep a path-less issuer without the trailing slash that a bare
    # AnyHttpUrl adds (issuers compare as exact strings, RFC 8414 §3.3)
    auth = AuthSettings(issuer_url=config.issuer, resource_server_url=config.resource,  # type: ignore[arg-type]
                        required_scopes=["read:analysis"], validate_token_resource=True)
    server = MCPServer("Clipron", instructions="Your Clipron code analyses and projects.",
                       token_verifier=ClipronTokenVerifier(config), auth=auth)
    api = ClipronApi(config)

    @server.tool()
    def whoami() -> dict[str, Any]:
        """Who this MCP session acts for: the Clipron user, the agent's client id and the granted scopes."""
        token = caller("read:analysis")
        return {"sub": token.subject, "client_id": token.client_id, "scopes": token.scopes}

    @server.tool()
    async def list_analyses() -> dict[str, Any]:
        """The user's code analyses, read from the Clipron API on the user's behalf."""
        token = caller("read:analysis")
        return await anyio.to_thread.run_sync(api.get, "/analyses", token.token, "read:analysis")

    @server.tool()
    async def create_project(name: str) -> dict[str, Any]:
        """Create a project in the user's Clipron account (needs the write:project scope)."""
        token = caller("write:project")
        return await anyio.to_thread.run_sync(api.post, "/projects", {"name": name}, token.token, "write:project")

    return server


def build_app(config: Config) -> Any:
    """The Starlette app: MCP at the resource URL's path, and RFC 9728 metadata listing every scope we accept
    (the SDK's own lists only the scopes every request needs, and agents ask for what it lists)."""
    path = urllib.parse.urlsplit(config.resource).path or "/"
    app = build_server(config).streamable_http_app(streamable_http_path=path)
    metadata = create_protected_resource_routes(config.resource, [config.issuer],  # type: ignore[arg-type]
                                                scopes_supported=SCOPES, resource_name="Clipron (MCP example)")
    app.router.routes[:0] = metadata  # first match wins: ours before the SDK's
    return app


def main() -> None:
    config = Config.from_environment()
    parts = urllib.parse.urlsplit(config.resource)
    print(f"Clipron MCP example at {config.resource} (authorization server {config.issuer})", flush=True)
    uvicorn.run(build_app(config), host=parts.hostname or "127.0.0.1", port=parts.port or 80, log_level="warning")


if __name__ == "__main__":
    main()
