""""Sign in with Clipron": a minimal OpenID Connect relying party built on Authlib.

Authlib does every OpenID step: discovery, the authorization URL (state, nonce, PKCE S256), the code
exchange, ID token validation (signature through the JWKS, iss, aud, exp, nonce, at_hash, auth_time),
UserInfo and the RP-Initiated Logout URL. Nothing here imports the server's code.

    make run                                   # terminal 1: Clipron (prints the registration token)
    curl -s http://127.0.0.1:8000/register -H 'Authorization: Bearer local-registration-token' \
      -H 'Content-Type: application/json' -d '{"client_name": "Sign in example",
      "redirect_uris": ["http://127.0.0.1:8766/callback"], "scope": "openid profile email",
      "post_logout_redirect_uris": ["http://127.0.0.1:8766/signed-out"]}'
    .venv/bin/python examples/clipron_signin.py --client-id app_... --client-secret ...
    # open http://127.0.0.1:8766/ and click "Sign in with Clipron"

The issuer follows the same settings as `make run` (ISSUER_URL, else PORT on 127.0.0.1); --issuer wins.
What the examples share (discovery, pages, command line) is in example_support.py beside this file.

Stdlib HTTP server, in-memory sessions: an example, not a production app.
"""

from __future__ import annotations

import argparse
import html
import http.server
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session
from example_support import Handler, client_arguments, discover, error_page, page, run

COOKIE = "signin_session"


@dataclass
class Config:
    issuer: str
    client_id: str
    client_secret: str | None
    base_url: str  # where this app is served: /callback and /signed-out live under it
    scope: str = "openid profile email"


@dataclass
class BrowserSession:
    pending: dict[str, str] = field(default_factory=dict)  # state, nonce, code_verifier, max_age of a sign-in
    id_token: str | None = None
    user: dict[str, Any] = field(default_factory=dict)


class ClipronOpenID(OpenIDMixin):
    """Authlib's OpenID Connect client logic on Clipron's discovery document."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.client_id = config.client_id
        self.server_metadata = discover(config.issuer, "/.well-known/openid-configuration",
                                        "AUTHLIB_INSECURE_TRANSPORT")

    def load_server_metadata(self) -> dict[str, Any]:
        return self.server_metadata

    def _get_session(self) -> OAuth2Session:
        return OAuth2Session(self.client_id, self.config.client_secret)

    def oauth(self, token: dict[str, Any] | None = None) -> OAuth2Session:
        method = "client_secret_basic" if self.config.client_secret else "none"
        return OAuth2Session(self.client_id, self.config.client_secret, scope=self.config.scope, token=token,
                             redirect_uri=self.config.base_url + "/callback", code_challenge_method="S256",
                             token_endpoint_auth_method=method)

    def start(self, session: BrowserSession, max_age: str | None) -> str:
        """The authorization URL; state, nonce and the PKCE verifier stay in this app."""
        pending = {"state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16),
                   "code_verifier": secrets.token_urlsafe(48)}
        extra = {"max_age": max_age} if max_age else {}
        url, _ = self.oauth().create_authorization_url(
            self.server_metadata["authorization_endpoint"], state=pending["state"], nonce=pending["nonce"],
            code_verifier=pending["code_verifier"], **extra)
        session.pending = {**pending, **extra}
        return url

    def finish(self, session: BrowserSession, callback_url: str) -> dict[str, Any]:
        """Check state and iss, exchange the code, validate the ID token, read UserInfo."""
        pending, session.pending = session.pending, {}
        params = parse_qs(urlsplit(callback_url).query)
        if not pending or params.get("state") != [pending["state"]]:
            raise PermissionError("this sign-in was not started here")
        if params.get("iss") != [self.config.issuer]:  # RFC 9207
            raise PermissionError("the response comes from another authorization server")
        oauth = self.oauth()
        token = oauth.fetch_token(self.server_metadata["token_endpoint"], authorization_response=callback_url,
                                  code_verifier=pending["code_verifier"], state=pending["state"])
        options = {"iss": {"values": [self.config.issuer]}, "auth_time": {"essential": True}}
        claims = self.parse_id_token(token, pending["nonce"], claims_options=options, leeway=30)
        if "max_age" in pending and time.time() - claims["auth_time"] > int(pending["max_age"]) + 30:
            raise PermissionError("the login is older than max_age allows")  # Core §3.1.3.7 step 13
        userinfo = oauth.get(self.server_metadata["userinfo_endpoint"], timeout=10).json()
        if userinfo.get("sub") != claims["sub"]:  # Core §5.3.2: never mix two users' claims
            raise PermissionError("UserInfo describes another user")
        session.id_token, session.user = token["id_token"], {**dict(claims), **userinfo}
        return session.user

    def logout_url(self, session: BrowserSession) -> str:
        """end_session_endpoint with id_token_hint, where to come back and a state to check there."""
        result = self.create_logout_url(post_logout_redirect_uri=self.config.base_url + "/signed-out",
                                        id_token_hint=session.id_token)
        session.pending = {"logout_state": result["state"]}
        session.id_token, session.user = None, {}
        return result["url"]


def make_handler(rp: ClipronOpenID) -> type[http.server.BaseHTTPRequestHandler]:
    sessions: dict[str, BrowserSession] = {}

    class RelyingPartyHandler(Handler):
        def _session(self) -> tuple[str, BrowserSession]:
            morsel = SimpleCookie(self.headers.get("Cookie", "")).get(COOKIE)
            key = morsel.value if morsel is not None and morsel.value in sessions else secrets.token_urlsafe(16)
            return key, sessions.setdefault(key, BrowserSession())

        def _send(self, status: int, body: str, key: str, location: str | None = None) -> None:
            self.send_html(status, body, location, (COOKIE, key))

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            key, session = self._session()
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            try:
                if parts.path == "/":
                    self._send(200, _home(session), key)
                elif parts.path == "/login":
                    self._send(302, "", key, rp.start(session, (query.get("max_age") or [None])[0]))
                elif parts.path == "/callback":
                    if "error" in query:
                        raise PermissionError("Clipron answered " + query["error"][0])
                    rp.finish(session, rp.config.base_url + "/callback?" + parts.query)
                    self._send(303, "", key, "/")
                elif parts.path == "/logout" and session.id_token:
                    self._send(302, "", key, rp.logout_url(session))
                elif parts.path == "/signed-out":
                    expected = session.pending.pop("logout_state", None)
                    ok = expected is not None and query.get("state") == [expected]
                    self._send(200 if ok else 400, page("Signed out", '<p id="signed-out">You are signed out.</p>'
                                                          if ok else '<p id="error">Unexpected sign-out.</p>'), key)
                else:
                    self._send(404, page("Not found", ""), key)
            except Exception as error:  # noqa: BLE001 - an example app shows what went wrong
                self._send(400, error_page(error), key)

    return RelyingPartyHandler


def _home(session: BrowserSession) -> str:
    if not session.user:
        return page("Sign in with Clipron", '<a id="sign-in" href="/login">Sign in with Clipron</a>')
    user = session.user
    return page("Signed in", (
        f'<p id="signed-in">Hello <span id="name">{html.escape(str(user.get("name", "")))}</span> '
        f'(<span id="email">{html.escape(str(user.get("email", "")))}</span>)</p>'
        f'<p>Clipron account <code id="sub">{html.escape(user["sub"])}</code>, signed in at '
        f'<span id="auth-time">{int(user["auth_time"])}</span></p>'
        '<a id="sign-out" href="/logout">Sign out</a>'))


def serve(config: Config, host: str = "127.0.0.1") -> http.server.ThreadingHTTPServer:
    """A server for the example (not started), on the port of `config.base_url`."""
    port = urlsplit(config.base_url).port or 80
    return http.server.ThreadingHTTPServer((host, port), make_handler(ClipronOpenID(config)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description='"Sign in with Clipron": an OpenID Connect relying party.')
    client_arguments(parser)
    parser.add_argument("--port", type=int, default=int(os.environ.get("EXAMPLE_PORT", "8766")))
    args = parser.parse_args(argv)
    server = serve(Config(args.issuer, args.client_id, args.client_secret, f"http://127.0.0.1:{args.port}"))
    return run(server, f"Sign in with Clipron example on http://127.0.0.1:{args.port}/")


if __name__ == "__main__":
    sys.exit(main())
