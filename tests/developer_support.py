"""Helpers for the Developer Settings, Connected apps and registration tests: users with sessions,
form posts carrying the CSRF token the page rendered, grants with refresh tokens written as a code
exchange writes them, and a scan of the whole table (to prove no secret is stored in the clear)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlencode, urlsplit

import boto3
import requests

from chalicelib import clock
from chalicelib.crypto.secrets import digest, new_id, new_token
from chalicelib.oauth import accounts
from chalicelib.records import CodeRecord, GrantRecord, RefreshTokenRecord, UserRecord
from tests.server_support import served

ISS = "http://127.0.0.1:8000"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_FORM_ACTION = re.compile(
    r'<form method="post" action="([^"]+)"[^>]*>\s*<input type="hidden" name="csrf_token" value="([^"]+)"'
)


@dataclass
class Browser:
    """A signed-in user driving the pages through chalice's test client."""

    http: Any
    user_id: str
    session_id: str

    @property
    def cookie(self) -> dict[str, str]:
        return {"Cookie": f"clipron_session={self.session_id}"}

    def get(self, path: str, headers: dict[str, str] | None = None):
        return self.http.get(path, headers={**self.cookie, **(headers or {})})

    def post(self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None):
        body = urlencode(fields).encode()
        return self.http.post(path, headers={**self.cookie, **FORM, **(headers or {})}, body=body)

    def csrf_for(self, page_path: str, action: str) -> str:
        """The CSRF token the page at `page_path` put in the form posting to `action`."""
        html = self.get(page_path).body.decode()
        for found_action, token in _FORM_ACTION.findall(html):
            if found_action == action:
                return token
        raise AssertionError(f"no form posting to {action} on {page_path}")

    def submit(self, page_path: str, action: str, fields: dict[str, str], headers: dict[str, str] | None = None):
        """Post a form as the page rendered it (with its CSRF token)."""
        return self.post(action, {"csrf_token": self.csrf_for(page_path, action), **fields}, headers)

    def create_app(self, name: str = "My App", app_type: str = "web",
                   redirect_uris: str = "https://app.example/callback",
                   scopes: tuple[str, ...] = ("read:analysis",)):
        fields = {"name": name, "app_type": app_type, "redirect_uris": redirect_uris}
        fields.update({f"scope.{s}": "on" for s in scopes})
        return self.follow(self.submit("/developer/apps/new", "/developer/apps", fields))

    def follow(self, response):
        """A 303 after a POST, followed as a browser would: a GET with the cookies the POST set (the
        sealed one-time secret display); any other response as it is."""
        if response.status_code != 303:
            return response
        cookies = response.headers.get("Set-Cookie") or []
        extra = "; ".join(c.split(";")[0] for c in ([cookies] if isinstance(cookies, str) else cookies))
        path = urlsplit(response.headers["Location"]).path
        return self.http.get(path, headers={"Cookie": "; ".join(filter(None, [self.cookie["Cookie"], extra]))})


def sign_in(services, http, email: str = "dev@example.com") -> Browser:
    """A user with a live session (as /login would leave it)."""
    user = accounts.create_user(services.store, email, "a good password", clock.now())
    session_id, _ = services.sessions.start(user.user_id)
    return Browser(http, user.user_id, session_id)


def plain_user(services, email: str) -> str:
    """A user that never logs in (no argon2 work): enough to own grants."""
    user = UserRecord(new_id("usr_"), email, "not-a-password-hash", clock.now())
    services.store.create_user(user)
    return user.user_id


def created_credentials(response) -> tuple[str, str | None]:
    """The client id and (confidential apps) secret shown on the creation or rotation page."""
    html = response.body.decode()
    client_id = unescape(re.search(r'id="client-id">([^<]+)<', html).group(1))
    secret = re.search(r'id="client-secret">([^<]+)<', html)
    return client_id, unescape(secret.group(1)) if secret else None


def issue_grant(services, client_id: str, user_id: str, scope: str = "read:analysis") -> tuple[str, str]:
    """A grant and a refresh token written exactly as a code exchange writes them (consent included)."""
    store, now = services.store, clock.now()
    authority = {"consent_generation": store.save_consent_scopes(user_id, client_id, scope.split(), now)}
    grant_id = new_id("gr_")
    code = CodeRecord(digest(new_token()), client_id, "https://app.example/callback", True, user_id, scope, None,
                      grant_id, now, now + 60, **authority)
    store.put_code(code)
    refresh_token = new_token()
    grant = GrantRecord(grant_id, client_id, user_id, scope, now, now + 86400, **authority)
    refresh = RefreshTokenRecord(digest(refresh_token), grant_id, client_id, user_id, scope, now, now + 86400,
                                 **authority)
    store.redeem_code(code, grant, refresh)
    return grant_id, refresh_token


def table_dump(services) -> str:
    """Every item of the OAuth table as text (a scan, as an attacker with a table dump would see it)."""
    table = boto3.resource("dynamodb").Table(services.settings.table_name)
    return json.dumps(table.scan()["Items"], default=str)


# -- the local run (`make run`) as a subprocess, for the example-app and browser tests ---------------

ROOT = Path(__file__).resolve().parent.parent
DEMO_EMAIL, DEMO_PASSWORD = "demo@example.com", "demo-password"
REGISTRATION_TOKEN = "local-registration-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalRun:
    issuer: str
    log_path: Path
    documents: Any = None  # shared_local_run: the https server (tls_support.TlsServer) whose CA the run trusts
    mcp_resource: str | None = None  # shared_local_run: its demo MCP resource (DEMO_MCP_RESOURCE)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def wait_until_served(process: subprocess.Popen, url: str, seconds: float, name: str, log: Callable[[], str]
                      ) -> None:
    """Poll `url` until it answers 2xx; fail with `log()` if `process` exits first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{log()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).ok:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not answer within {seconds} s:\n{log()}")
        time.sleep(0.2)


@contextlib.contextmanager
def local_run(tmp_path: Path, startup_seconds: float = 90, extra_env: dict[str, str] | None = None
              ) -> Iterator[LocalRun]:
    """`python -m chalicelib.local` on free ports (moto server + chalice local), stopped at the end."""
    port, moto_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("ISSUER_URL", "AWS_ENDPOINT_URL", "API_AUDIENCE")}
    env.update({"PORT": str(port), "MOTO_PORT": str(moto_port), "PYTHONUNBUFFERED": "1", **(extra_env or {})})
    log_path = tmp_path / "local-run.log"
    run = LocalRun(f"http://127.0.0.1:{port}", log_path)
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "chalicelib.local"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
    try:
        wait_until_served(process, run.issuer + "/.well-known/oauth-authorization-server", startup_seconds,
                          "the local run", run.log)
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # local.py stops chalice local and moto on SIGTERM
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def register_client(issuer: str, redirect_uri: str, name: str = "Example App") -> dict[str, Any]:
    """A confidential client registered with POST /register and the local run's registration token."""
    response = requests.post(
        issuer + "/register",
        json={"client_name": name, "redirect_uris": [redirect_uri], "scope": "read:analysis read:project"},
        headers={"Authorization": f"Bearer {REGISTRATION_TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()


@contextlib.contextmanager
def example_app(issuer: str, client_id: str, client_secret: str | None, port: int) -> Iterator[str]:
    """The requests-oauthlib example app (examples/clipron_webapp.py) served in a thread; yields its base URL."""
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import clipron_webapp
    finally:
        sys.path.remove(str(ROOT / "examples"))
    config = clipron_webapp.Config(issuer, client_id, client_secret, f"http://127.0.0.1:{port}/callback",
                                   ["read:analysis"])
    with served(clipron_webapp.serve(config, port=port)):
        yield f"http://127.0.0.1:{port}"
