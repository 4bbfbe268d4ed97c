"""CORS: the back channel answers preflights and carries Access-Control-Allow-Origin: * without credentials;
the pages never do (chalice.test runs the same local gateway as `chalice local`)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app import app
from chalicelib.web.cors import back_channel

PREFLIGHTS = [
    ("/token", "POST"),
    ("/revoke", "POST"),
    ("/introspect", "POST"),
    ("/register", "POST"),
    ("/register/some-client", "GET"),
    ("/register/some-client", "PUT"),
    ("/register/some-client", "DELETE"),
    ("/.well-known/oauth-authorization-server", "GET"),
    ("/.well-known/jwks.json", "GET"),
    ("/.well-known/oauth-protected-resource/v1", "GET"),
    ("/v1/me", "GET"),
    ("/v1/analyses", "GET"),
    ("/v1/projects", "POST"),
]
PAGES = ["/authorize", "/login", "/consent", "/logout", "/developer/apps", "/developer/apps/new",
         "/developer/apps/some-client", "/account/apps"]
ORIGIN = {"Origin": "https://inspector.example"}


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]


def preflight(http, path: str, method: str) -> Answer:
    """OPTIONS through the local gateway itself: chalice.test's response wrapper cannot hold the preflight's
    empty body (None), which `chalice local`'s HTTP server sends as a response without body."""
    response = http._local_gateway.handle_request(method="OPTIONS", path=path, body=b"", headers={
        **ORIGIN,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization,content-type,mcp-protocol-version",
    })
    return Answer(response["statusCode"], response["headers"])


@pytest.mark.parametrize("path, method", PREFLIGHTS)
def test_back_channel_endpoints_answer_preflights(aws, http, path, method):
    response = preflight(http, path, method)
    assert response.status_code == 200
    headers = response.headers
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert method in headers["Access-Control-Allow-Methods"].split(",")
    allowed = {name.strip().lower() for name in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "mcp-protocol-version"} <= allowed
    assert "Access-Control-Allow-Credentials" not in headers  # these endpoints never read cookies


@pytest.mark.parametrize("path", PAGES)
def test_pages_answer_no_preflight(aws, http, path):
    response = preflight(http, path, "POST")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "POST" not in response.headers.get("Access-Control-Allow-Methods", "")


def test_back_channel_responses_carry_the_origin_header_errors_included(aws, http):
    form = {**ORIGIN, "Content-Type": "application/x-www-form-urlencoded"}
    responses = [
        http.post("/token", headers=form, body="grant_type=nope"),  # 400
        http.post("/revoke", headers=form, body="token=x"),  # 401: no client authentication
        http.get("/.well-known/oauth-authorization-server", headers=ORIGIN),
        http.get("/.well-known/jwks.json", headers=ORIGIN),
        http.post("/register", headers={**ORIGIN, "Content-Type": "application/json"}, body="{}"),
    ]
    for response in responses:
        assert response.headers["Access-Control-Allow-Origin"] == "*", response.body
        assert "Access-Control-Allow-Credentials" not in response.headers
    refused = http.get("/v1/me", headers=ORIGIN)
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == "*"
    # a browser client may read the challenge that points at the protected-resource metadata
    assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"].split(",")


@pytest.mark.parametrize("path", ["/authorize?client_id=nope", "/login", "/developer/apps", "/account/apps"])
def test_pages_never_carry_cors_headers(aws, http, path):
    response = http.get(path, headers=ORIGIN)
    assert not any(name.lower().startswith("access-control-") for name in response.headers)


def test_every_route_follows_the_rule():
    """Every back-channel route, present or added later (OIDC's /userinfo), has CORS; no page has."""
    with_cors = {path for path, views in app.routes.items() if all(view.cors for view in views.values())}
    without = {path for path, views in app.routes.items() if not any(view.cors for view in views.values())}
    assert with_cors | without == set(app.routes)  # one configuration per path
    assert with_cors == {path for path in app.routes if back_channel(path)}
    assert {path for path, _ in PREFLIGHTS} - {"/register/some-client"} <= with_cors
    assert not {path for path in PAGES if path in app.routes} & with_cors
    for views in app.routes.values():
        for view in views.values():
            assert view.cors is None or (view.cors.allow_origin == "*" and
                                         "Access-Control-Allow-Credentials" not in
                                         view.cors.get_access_control_headers())
