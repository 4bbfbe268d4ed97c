"""What the example apps (clipron_webapp.py, clipron_signin.py) share: finding the issuer and its metadata,
their stdlib HTTP pages, and the command line. Nothing here imports the server's code or does an OAuth step.
"""

from __future__ import annotations

import argparse
import html
import http.server
import os
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def default_issuer(environ: Mapping[str, str]) -> str:
    """The issuer `make run` serves, from the same settings: ISSUER_URL, else 127.0.0.1 on PORT (8000);
    CLIPRON_ISSUER wins over both."""
    port = environ.get("PORT") or "8000"
    return environ.get("CLIPRON_ISSUER") or environ.get("ISSUER_URL") or f"http://127.0.0.1:{port}"


def discover(issuer: str, well_known: str, insecure_transport_variable: str) -> dict[str, Any]:
    """The issuer's metadata document (RFC 8414 / OpenID Discovery), checked to name that same issuer.

    Plain http is accepted only on loopback: the OAuth library is told so through its own variable."""
    if urlsplit(issuer).hostname in LOOPBACK_HOSTS:
        os.environ[insecure_transport_variable] = "1"
    response = requests.get(issuer + well_known, timeout=10)
    response.raise_for_status()
    metadata: dict[str, Any] = response.json()
    if metadata["issuer"] != issuer:  # RFC 8414 §3.3, Discovery §4.3
        raise RuntimeError("the discovery document names another issuer")
    return metadata


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


def error_page(error: Exception) -> str:
    """An example app shows what went wrong."""
    return page("Error", f'<p id="error">{html.escape(type(error).__name__)}: {html.escape(str(error))}</p>')


class Handler(http.server.BaseHTTPRequestHandler):
    """A quiet request handler that answers HTML pages, never cached."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # the callback's query string carries the code: keep it out of the console

    def send_html(self, status: int, body: str, location: str | None = None,
                  cookie: tuple[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        if cookie:
            self.send_header("Set-Cookie", f"{cookie[0]}={cookie[1]}; Path=/; HttpOnly; SameSite=Lax")
        if location:
            self.send_header("Location", location)
        self.end_headers()
        self.wfile.write(body.encode())


def client_arguments(parser: argparse.ArgumentParser) -> None:
    """--issuer, --client-id and --client-secret, with their environment defaults."""
    parser.add_argument("--issuer", default=default_issuer(os.environ),
                        help="the authorization server (default: CLIPRON_ISSUER, ISSUER_URL, or PORT on 127.0.0.1)")
    parser.add_argument("--client-id", default=os.environ.get("CLIENT_ID"), required="CLIENT_ID" not in os.environ)
    parser.add_argument("--client-secret", default=os.environ.get("CLIENT_SECRET"),
                        help="omit for a public (PKCE-only) client")


def run(server: http.server.ThreadingHTTPServer, banner: str) -> int:
    """Serve until Ctrl-C."""
    print(banner, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
