"""The local run: an embedded moto server (DynamoDB + KMS), provisioned and seeded, and `chalice local`.

`make run` calls this. Ctrl-C stops everything it started. The launcher's own knobs (PORT,
MOTO_PORT, DEMO_*) are read here; the app's settings come from chalicelib.settings as always.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from chalicelib import clock, wiring
from chalicelib.api.service import seed_demo_analyses
from chalicelib.crypto.secrets import digest
from chalicelib.local_moto import start_moto
from chalicelib.oauth import accounts, registration, scopes
from chalicelib.oauth.grants import TOKEN_EXCHANGE
from chalicelib.oauth.resource_servers import new_resource_server
from chalicelib.provision import provision
from chalicelib.records import ClientSecret, RegistrationTokenRecord
from chalicelib.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = {
    "PORT": "8000",
    "DEMO_EMAIL": "demo@example.com",
    "DEMO_PASSWORD": "demo-password",
    "DEMO_CLIENT_ID": "demo-client",
    "DEMO_CLIENT_SECRET": "demo-client-secret",
    "DEMO_REDIRECT_URI": "http://127.0.0.1:8765/callback",
    "REGISTRATION_TOKEN": "local-registration-token",
    "DEMO_MCP_RESOURCE": "http://127.0.0.1:8001/mcp",
    "DEMO_MCP_CLIENT_ID": "demo-mcp-server",
    "DEMO_MCP_CLIENT_SECRET": "demo-mcp-server-secret",
}
DEMO_MCP_SCOPES = ("read:analysis", "write:project")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def busy_port_message(port: int, knob: str) -> str | None:
    """Why the local run cannot start on `port`, and the setting that moves it; None if the port is free."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is not busy
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return (f"error: port {port} on 127.0.0.1 is already in use (another `make run`?). "
                    f"Stop it, or choose another port: {knob}={port + 1} make run")
    return None


def aws_environment(moto_port: int, environ: dict[str, str]) -> dict[str, str]:
    env = dict(environ)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": env.get("AWS_DEFAULT_REGION", "us-east-1"),
            "AWS_REGION": env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")),
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
            "STAGE": "local",
        }
    )
    env.setdefault("REGISTRATION_POLICY", "open")  # agents register themselves (README "Connect AI agents")
    env.pop("AWS_PROFILE", None)
    return env


def seed(services: wiring.Services, knobs: dict[str, str]) -> None:
    """The demo user (with two demo analyses), the demo confidential client and the registration token."""
    store, now = services.store, clock.now()
    user = accounts.create_user(store, knobs["DEMO_EMAIL"], knobs["DEMO_PASSWORD"], now, name="Demo User",
                                email_verified=True)
    origin = knobs["DEMO_REDIRECT_URI"].rsplit("/", 1)[0]
    metadata = {"client_name": "Demo App", "redirect_uris": [knobs["DEMO_REDIRECT_URI"]],
                "scope": " ".join(sorted(scopes.CATALOGUE)), "post_logout_redirect_uris": [origin + "/signed-out"]}
    client = registration.build_client(metadata, user.user_id, now, verified=True).client
    client.client_id = knobs["DEMO_CLIENT_ID"]
    client.secrets = [ClientSecret(digest(knobs["DEMO_CLIENT_SECRET"]))]
    store.create_client(client)
    token = RegistrationTokenRecord(digest(knobs["REGISTRATION_TOKEN"]), now, now + 365 * 86400, "local run")
    store.put_registration_token(token)
    seed_demo_analyses(services.api_store, user.user_id, now)
    seed_demo_mcp(services, knobs)


def seed_demo_mcp(services: wiring.Services, knobs: dict[str, str]) -> None:
    """The demo MCP resource and the confidential client acting for it, allowed to exchange tokens (RFC 8693)."""
    now = clock.now()
    metadata = {"client_name": "Demo MCP server", "redirect_uris": [], "grant_types": ["client_credentials"],
                "response_types": [], "scope": " ".join(DEMO_MCP_SCOPES)}
    client = registration.build_client(metadata, None, now, verified=True).client
    client.client_id = knobs["DEMO_MCP_CLIENT_ID"]
    client.secrets = [ClientSecret(digest(knobs["DEMO_MCP_CLIENT_SECRET"]))]
    client.grant_types = [TOKEN_EXCHANGE]
    services.store.create_client(client)
    demo_scopes = {scope: scopes.CATALOGUE[scope] for scope in DEMO_MCP_SCOPES}
    server = new_resource_server(knobs["DEMO_MCP_RESOURCE"], "Clipron demo MCP server", demo_scopes,
                                 services.settings.access_token_seconds, client.client_id, now)
    services.store.create_resource_server(server)


def banner(settings: Any, knobs: dict[str, str], moto_port: int) -> str:
    issuer = settings.issuer
    return f"""
Clipron OAuth is running (stage local, AWS = embedded moto on 127.0.0.1:{moto_port})

  Issuer / base URL    {issuer}
  Metadata             {issuer}/.well-known/oauth-authorization-server
  OpenID configuration {issuer}/.well-known/openid-configuration
  JWKS                 {issuer}/.well-known/jwks.json
  Clipron API          {issuer}/v1/analyses, /v1/me, POST /v1/projects (Authorization: Bearer <access token>)
  Demo user            {knobs['DEMO_EMAIL']} / {knobs['DEMO_PASSWORD']}
  Demo client          {knobs['DEMO_CLIENT_ID']} / {knobs['DEMO_CLIENT_SECRET']} (client_secret_basic)
  Demo redirect URI    {knobs['DEMO_REDIRECT_URI']}
  Registration token   {knobs['REGISTRATION_TOKEN']}  (POST /register, Authorization: Bearer ...)
  Demo MCP resource    {knobs['DEMO_MCP_RESOURCE']}  (scopes {' '.join(DEMO_MCP_SCOPES)})
  Demo MCP client      {knobs['DEMO_MCP_CLIENT_ID']} / {knobs['DEMO_MCP_CLIENT_SECRET']} (token exchange for the API)

Open in a browser (PKCE verifier: dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk):
  {issuer}/authorize?response_type=code&client_id={knobs['DEMO_CLIENT_ID']}&state=xyz&code_challenge_method=S256\
&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM
State lives in memory and is gone when you stop. Ctrl-C stops everything.
"""


def main() -> int:
    knobs = {name: os.environ.get(name) or default for name, default in DEFAULTS.items()}
    port = int(knobs["PORT"])
    moto_port = int(os.environ.get("MOTO_PORT") or free_port())
    busy = busy_port_message(port, "PORT") or busy_port_message(moto_port, "MOTO_PORT")
    if busy:
        print(busy, file=sys.stderr)
        return 2
    env = aws_environment(moto_port, dict(os.environ))
    env.setdefault("ISSUER_URL", f"http://127.0.0.1:{port}")
    os.environ.update(env)
    moto = start_moto(moto_port)
    server: subprocess.Popen[bytes] | None = None
    try:
        services = wiring.build(load_settings(env))
        provision(services)
        seed(services, knobs)
        command = [sys.executable, "-m", "chalicelib.local_server", "local", "--host", "127.0.0.1", "--port",
                   str(port), "--stage", "local", "--no-autoreload"]
        server = subprocess.Popen(command, cwd=ROOT, env=env)
        print(banner(services.settings, knobs, moto_port), flush=True)
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())
