"""A minimal third-party web app that signs users in with Clipron and calls the Clipron API.

It is an OAuth 2.0 *client*, written the way an outside developer would write one: every OAuth
step is done by requests-oauthlib (authorization URL with PKCE S256 and state, code exchange with
HTTP Basic client authentication, refresh); nothing here imports the server's code.

    # terminal 1: the authorization server (prints the registration token)
    make run
    # terminal 2: register this app (or create it in Developer Settings), then run it
    .venv/bin/python examples/clipron_webapp.py --client-id app_... --client-secret ... \
        --redirect-uri http://127.0.0.1:8765/callback
    # open http://127.0.0.1:8765/ and click "Sign in with Clipron"

The issuer follows the same settings as `make run` (ISSUER_URL, else PORT on 127.0.0.1); --issuer wins.
What the examples share (discovery, pages, command line) is in example_support.py beside this file.

Stdlib HTTP server, in-memory sessions: an example, not a production app.
"""

from __future__ import annotations

import argparse
import html
import http.server
import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

from example_support import Handler, client_arguments, discover, error_page, page, run
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

COOKIE = "example_session"


@dataclass
class Config:
    issuer: str
    client_id: str
    client_secret: str | None
    redirect_uri: str
    scope: list[str] = field(default_factory=lambda: ["read:analysis"])


class ClipronClient:
    """The OAuth side of the example: one OAuth2Session per browser session."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.metadata = discover(config.issuer, "/.well-known/oauth-authorization-server",
                                 "OAUTHLIB_INSECURE_TRANSPORT")
        self.sessions: dict[str, OAuth2Session] = {}

    def _auth(self) -> HTTPBasicAuth | None:
        secret = self.config.client_secret
        return HTTPBasicAuth(self.config.client_id, secret) if secret else None

    def authorization_url(self, browser: str) -> str:
        """Where to send the browser: a fresh state and a PKCE S256 challenge (the verifier stays here)."""
        oauth = OAuth2Session(self.config.client_id, redirect_uri=self.config.redirect_uri,
                              scope=self.config.scope, pkce="S256")
        url, _state = oauth.authorization_url(self.metadata["authorization_endpoint"])
        self.sessions[browser] = oauth
        return url

    def finish(self, browser: str, callback_url: str) -> dict[str, Any]:
        """Check state (requests-oauthlib) and iss (RFC 9207), then exchange the code for tokens."""
        oauth = self.sessions.get(browser)
        if oauth is None:
            raise PermissionError("no sign-in is in progress in this browser")
        issuers = parse_qs(urlsplit(callback_url).query).get("iss", [self.config.issuer])
        if issuers != [self.config.issuer]:
            raise PermissionError("the response comes from another authorization server")
        kwargs: dict[str, Any] = {"auth": self._auth()} if self.config.client_secret else {
            "include_client_id": True}
        return oauth.fetch_token(self.metadata["token_endpoint"], authorization_response=callback_url, **kwargs)

    def refresh(self, browser: str) -> dict[str, Any]:
        oauth = self.sessions[browser]
        kwargs: dict[str, Any] = {"auth": self._auth()} if self.config.client_secret else {
            "client_id": self.config.client_id}
        return oauth.refresh_token(self.metadata["token_endpoint"], **kwargs)

    def api(self, browser: str, path: str) -> tuple[int, Any]:
        response = self.sessions[browser].get(self.config.issuer + path, timeout=10)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text


def make_handler(client: ClipronClient) -> type[http.server.BaseHTTPRequestHandler]:
    callback_path = urlsplit(client.config.redirect_uri).path

    class AppHandler(Handler):
        def _browser(self) -> tuple[str, bool]:
            jar: SimpleCookie = SimpleCookie(self.headers.get("Cookie", ""))
            morsel = jar.get(COOKIE)
            if morsel is not None and morsel.value:
                return morsel.value, False
            return secrets.token_urlsafe(16), True

        def _send(self, status: int, body: str, location: str | None = None, browser: str | None = None) -> None:
            self.send_html(status, body, location, (COOKIE, browser) if browser else None)

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            browser, new = self._browser()
            path = urlsplit(self.path).path
            try:
                if path == "/":
                    self._send(200, page("Example app", '<a id="sign-in" href="/login">Sign in with Clipron</a>'),
                               browser=browser if new else None)
                elif path == "/login":
                    self._send(302, "", location=client.authorization_url(browser), browser=browser if new else None)
                elif path == callback_path:
                    self._callback(browser)
                elif path == "/refresh":
                    token = client.refresh(browser)
                    self._send(200, page("Refreshed", f'<p id="refreshed">new access token expires in '
                                                       f'{int(token.get("expires_in", 0))} s</p>'))
                else:
                    self._send(404, page("Not found", ""))
            except Exception as error:  # noqa: BLE001 - an example app shows what went wrong
                self._send(400, error_page(error))

        def _callback(self, browser: str) -> None:
            full_url = client.config.redirect_uri.split("?")[0] + "?" + urlsplit(self.path).query
            if "error=" in full_url:
                self._send(400, page("Not signed in", f'<p id="error">{html.escape(full_url)}</p>'))
                return
            client.finish(browser, full_url)
            me_status, me = client.api(browser, "/v1/me")
            analyses_status, analyses = client.api(browser, "/v1/analyses")
            body = (f'<p id="signed-in">Signed in with Clipron.</p>'
                    f'<h2>/v1/me ({me_status})</h2><pre id="me">{html.escape(json.dumps(me))}</pre>'
                    f'<h2>/v1/analyses ({analyses_status})</h2>'
                    f'<pre id="analyses">{html.escape(json.dumps(analyses))}</pre>'
                    f'<a href="/refresh">Refresh the access token</a>')
            self._send(200, page("Signed in", body))

    return AppHandler


def serve(config: Config, host: str = "127.0.0.1", port: int | None = None) -> http.server.ThreadingHTTPServer:
    """A server for the example (not started): port defaults to the redirect URI's."""
    client = ClipronClient(config)
    port = port if port is not None else (urlsplit(config.redirect_uri).port or 80)
    return http.server.ThreadingHTTPServer((host, port), make_handler(client))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A third-party web app that signs in with Clipron.")
    client_arguments(parser)
    parser.add_argument("--redirect-uri", default=os.environ.get("REDIRECT_URI", "http://127.0.0.1:8765/callback"))
    parser.add_argument("--scope", default="read:analysis", help="space-separated scopes to ask for")
    args = parser.parse_args(argv)
    config = Config(args.issuer, args.client_id, args.client_secret, args.redirect_uri, args.scope.split())
    server = serve(config)
    return run(server, f"Example app on http://{server.server_address[0]}:{server.server_address[1]}/")


if __name__ == "__main__":
    sys.exit(main())
