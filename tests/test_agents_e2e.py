"""An AI agent connects: the official MCP SDK client, given nothing but the example MCP server's URL.

Against a real local run (`python -m chalicelib.local`, open registration) and the example MCP server
(examples/mcp_server.py) on free ports: the SDK's OAuthClientProvider discovers the protected
resource (RFC 9728) and Clipron (RFC 8414), registers itself (RFC 7591, no token), sends the user
through login and consent in headless Chromium, exchanges the code with `resource` (RFC 8707),
calls tools (one of which reaches the Clipron API through token exchange) and refreshes. A second
agent identifies itself by a Client ID Metadata Document the test serves over https with its own CA
(the local run trusts it through SSL_CERT_FILE).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import parse_qsl, urlsplit

import anyio
import jwt
import pytest
import requests

from tests.developer_support import DEMO_EMAIL, DEMO_PASSWORD, free_port, wait_until_served

if TYPE_CHECKING:  # the SDK is imported where it is used: importing it costs every worker seconds at collection
    from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
    from mcp.shared.auth import OAuthClientInformationFull, OAuthToken

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(shared_local_run, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The local run (trusting the test CA, its demo MCP resource on a free port), the example MCP server
    for that resource, and the https server for CIMD."""
    run, resource = shared_local_run, shared_local_run.mcp_resource
    with mcp_server(run.issuer, resource, tmp_path_factory.mktemp("agents")) as mcp_log:
        yield {"issuer": run.issuer, "resource": resource, "documents": run.documents, "run": run, "mcp_log": mcp_log}


@contextlib.contextmanager
def mcp_server(issuer: str, resource: str, scratch: Path) -> Iterator[Path]:
    env = {**os.environ, "CLIPRON_ISSUER": issuer, "DEMO_MCP_RESOURCE": resource, "PYTHONUNBUFFERED": "1"}
    log_path = scratch / "mcp-server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(ROOT / "examples" / "mcp_server.py")], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        metadata = resource.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
        wait_until_served(process, metadata, 60, "the MCP server", lambda: log_path.read_text()[-3000:])
        yield log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


class Storage:
    """The agent's token and registration storage (in memory, as the SDK's examples keep it)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class User:
    """The person at the browser: signs in to Clipron and allows the agent; the redirect is captured.

    The agent runs in a thread of its own (`run_async`); the browser is the worker's shared Chromium,
    which Playwright binds to the test's thread, so the SDK's redirect handler hands the URL over and
    the test's thread drives the page (`run_async` serves `pending` while the agent runs)."""

    def __init__(self, callback: str, page: Any) -> None:
        self.callback = callback
        self.page = page
        self.pending: queue.Queue[str] = queue.Queue()
        self.results: queue.Queue[str] = queue.Queue()
        self.consent_pages: list[str] = []

    def authorize(self, url: str) -> None:
        page = self.page
        page.goto(url)
        assert page.title().startswith("Sign in"), page.title() + page.content()[:1500]
        page.get_by_label("Email").fill(DEMO_EMAIL)
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/consent?request=*")
        self.consent_pages.append(page.content())
        # nothing listens on the agent's loopback callback: capture the request the redirect makes
        with page.expect_request(lambda request: request.url.startswith(self.callback + "?")) as callback:
            page.get_by_role("button", name="Allow").click()
        self.results.put(callback.value.url)

    async def redirect_handler(self, url: str) -> None:
        self.pending.put(url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        from mcp.client.auth import AuthorizationCodeResult

        captured = await anyio.to_thread.run_sync(functools.partial(self.results.get, timeout=60))
        params = dict(parse_qsl(urlsplit(captured).query))
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"), iss=params.get("iss"))


def agent(resource: str, user: User, storage: Storage, metadata_url: str | None = None) -> OAuthClientProvider:
    from mcp.client.auth import OAuthClientProvider
    from mcp.shared.auth import OAuthClientMetadata
    from pydantic import AnyUrl

    metadata = OAuthClientMetadata(client_name="Agent under test", redirect_uris=[AnyUrl(user.callback)],
                                   grant_types=["authorization_code", "refresh_token"], response_types=["code"])
    return OAuthClientProvider(server_url=resource, client_metadata=metadata, storage=storage,
                               redirect_handler=user.redirect_handler, callback_handler=user.callback_handler,
                               client_metadata_url=metadata_url)


async def call(resource: str, provider: OAuthClientProvider, *tools: str) -> list[Any]:
    """Connect, initialise, and call each tool; the structured results, in order."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    results = []
    async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30.0, read=120.0)) as http, \
            streamable_http_client(resource, http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        for tool in tools:
            result = await session.call_tool(tool, {})
            text = "".join(getattr(part, "text", "") for part in result.content)
            assert not result.is_error, f"{tool}: {text}"
            results.append(result.structured_content or json.loads(text))
    return results


def run_async(user: User, function: Callable[..., Any], *args: Any) -> Any:
    """anyio.run in a thread of its own (Playwright's sync API holds this thread's event loop), while this
    thread signs the user in whenever the agent sends them to the browser."""
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(anyio.run, function, *args)
        while not running.done():
            with contextlib.suppress(queue.Empty):
                user.authorize(user.pending.get(timeout=0.05))
        return running.result()


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_an_agent_connects_with_nothing_but_the_server_url(world, browser_page):
    resource, issuer = world["resource"], world["issuer"]
    user, storage = User(f"http://127.0.0.1:{free_port()}/callback", browser_page), Storage()
    provider = agent(resource, user, storage)

    whoami, analyses = run_async(user, call, resource, provider, "whoami", "list_analyses")

    # open registration: a public client, registered by the SDK itself, unverified on the consent page
    client_id = storage.client_info.client_id
    assert client_id.startswith("app_") and storage.client_info.token_endpoint_auth_method == "none"
    assert 'id="unverified"' in user.consent_pages[0]
    # the token is for this MCP server only (RFC 8707), and for the user who consented
    first = storage.tokens
    token = claims(first.access_token)
    assert token["aud"] == resource and token["iss"] == issuer and token["client_id"] == client_id
    assert whoami["sub"] == token["sub"] and whoami["client_id"] == client_id
    # the Clipron API was called on the user's behalf through token exchange (the demo user's analyses)
    assert analyses["analyses"], analyses
    # and the Clipron API itself refuses the MCP token (audience binding)
    refused = requests.get(issuer + "/v1/analyses", headers={"Authorization": f"Bearer {first.access_token}"},
                           timeout=10)
    assert refused.status_code == 401

    # a refresh: the access token has run out, the SDK refreshes (with `resource`) before the next call
    provider.context.token_expiry_time = time.time() - 1
    (again,) = run_async(user, call, resource, provider, "whoami")
    assert storage.tokens.access_token != first.access_token
    assert storage.tokens.refresh_token != first.refresh_token  # rotated
    assert claims(storage.tokens.access_token)["aud"] == resource
    assert again["sub"] == whoami["sub"]
    assert len(user.consent_pages) == 1  # no second login or consent


def test_an_agent_identified_by_a_client_id_metadata_document(world, browser_page):
    resource, documents = world["resource"], world["documents"]
    user, storage = User(f"http://127.0.0.1:{free_port()}/callback", browser_page), Storage()
    metadata_url = documents.url("/agent/client.json")
    documents.behaviour.document({
        "client_id": metadata_url, "client_name": "Agent by metadata document", "redirect_uris": [user.callback],
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "token_endpoint_auth_method": "none", "application_type": "native",
        "scope": "read:analysis write:project"}, **{"Cache-Control": "max-age=600"})
    provider = agent(resource, user, storage, metadata_url=metadata_url)

    (whoami,) = run_async(user, call, resource, provider, "whoami")

    assert storage.client_info.client_id == metadata_url  # no registration request: the URL is the client id
    assert whoami["client_id"] == metadata_url
    assert claims(storage.tokens.access_token)["aud"] == resource
    page = user.consent_pages[0]
    assert "Agent by metadata document" in page and "described by <strong>127.0.0.1</strong>" in page
    assert documents.behaviour.requests.count("/agent/client.json") == 1  # fetched once, then cached
