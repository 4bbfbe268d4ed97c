"""Issue 12, "Pages that don't trip people": a known path with a method it does not serve (DELETE /token,
PUT /authorize) is answered by the app with a 405 and an Allow header, never by API Gateway's 403 that
quotes the Authorization header; the paths between routes (/v1, /.well-known) are our 404.

Locally through chalice.test (the local gateway `chalice local` runs), and in the OpenAPI body that
`chalice deploy` uploads: every path defines every method, so API Gateway never answers by itself.
(The packaged CloudFormation template: tests/test_home_and_not_found.py.)
"""

from __future__ import annotations

import json

import pytest
from chalice.deploy.swagger import TemplatedSwaggerGenerator

from app import app
from chalicelib.web.common import HTTP_METHODS
from chalicelib.web.cors import back_channel
from chalicelib.web.home import GREEDY, NOT_FOUND
from chalicelib.web.methods import NOT_ALLOWED
from tests.method_support import assert_every_method_reaches_the_app
from tests.test_home_and_not_found import BEARER, HTML, greedy_routes  # noqa: F401 (autouse fixture)
from tests.test_login_pages import assert_secure_page

# what each path serves: the Allow header a client relies on
SERVED = {
    "/": ("GET",),
    "/.well-known/jwks.json": ("GET",),
    "/.well-known/oauth-authorization-server": ("GET",),
    "/.well-known/oauth-protected-resource/v1": ("GET",),
    "/.well-known/openid-configuration": ("GET",),
    "/account/apps": ("GET",),
    "/account/apps/{client_id}/revoke": ("POST",),
    "/authorize": ("GET", "POST"),
    "/consent": ("GET", "POST"),
    "/developer/apps": ("GET", "POST"),
    "/developer/apps/new": ("GET",),
    "/developer/apps/{client_id}": ("GET", "POST"),
    "/developer/apps/{client_id}/delete": ("POST",),
    "/developer/apps/{client_id}/issued": ("GET",),
    "/developer/apps/{client_id}/rotate": ("POST",),
    "/introspect": ("POST",),
    "/login": ("GET", "POST"),
    "/logout": ("GET", "POST"),
    "/register": ("POST",),
    "/register/{client_id}": ("GET", "PUT", "DELETE"),
    "/revoke": ("POST",),
    "/static/style.css": ("GET",),
    "/token": ("POST",),
    "/userinfo": ("GET", "POST"),
    "/v1/analyses": ("GET",),
    "/v1/me": ("GET",),
    "/v1/projects": ("POST",),
}
BETWEEN = ("/.well-known", "/.well-known/oauth-protected-resource", "/account", "/account/apps/{client_id}",
           "/developer", "/static", "/v1")


def _url(path: str) -> str:
    return path.replace("{client_id}", "app_x")


def _unserved(path: str, served: tuple[str, ...]) -> list[str]:
    """Every method but those served; OPTIONS on the back channel is the CORS preflight (tests/test_cors.py)."""
    return [m for m in HTTP_METHODS if m not in served and not (m == "OPTIONS" and back_channel(path))]


def _request(http, method: str, path: str, headers: dict[str, str] | None = None):
    body = b"" if method in ("GET", "HEAD", "OPTIONS") else b"{}"
    return http.request(method, _url(path), headers={"Authorization": BEARER, "Content-Type": "application/json",
                                                     **(headers or {})}, body=body)


def test_the_table_names_every_route():
    assert set(app.routes) == set(SERVED) | set(BETWEEN) | {GREEDY}


@pytest.mark.parametrize("path", sorted(SERVED))
def test_a_method_a_path_does_not_serve_is_our_405_with_allow(http, path):
    for method in _unserved(path, SERVED[path]):
        response = _request(http, method, path)
        assert response.status_code == 405, (method, path, response.body[:200])
        assert response.headers["Allow"] == ", ".join(SERVED[path]), (method, path)
        assert "zq7" not in json.dumps(dict(response.headers))
        if method == "HEAD":
            assert response.body == b""
        else:
            assert json.loads(response.body) == {"error": "invalid_request", "error_description": NOT_ALLOWED}


@pytest.mark.parametrize("path", BETWEEN)
def test_the_paths_between_routes_are_our_404(http, path):
    for method in _unserved(path, ()):
        response = _request(http, method, path)
        assert response.status_code == 404, (method, path)
        assert method == "HEAD" or json.loads(response.body) == NOT_FOUND


def test_a_browser_gets_the_405_page_on_a_page_and_json_on_the_back_channel(http):
    origin = {"Origin": "https://inspector.example"}
    page = _request(http, "PUT", "/authorize", {**HTML, **origin})
    assert page.status_code == 405 and page.headers["Allow"] == "GET, POST"
    assert_secure_page(page)
    assert "Method not allowed" in page.body.decode() and b"zq7" not in page.body
    assert not any(name.lower().startswith("access-control-") for name in page.headers)  # pages: no CORS
    api = _request(http, "DELETE", "/token", {**HTML, **origin})
    assert api.status_code == 405 and api.headers["Content-Type"] == "application/json"
    assert api.headers["Access-Control-Allow-Origin"] == "*"  # a browser client can read why


def test_a_preflight_to_a_page_is_refused_without_cors(http):
    response = _request(http, "OPTIONS", "/login", {"Origin": "https://inspector.example",
                                                    "Access-Control-Request-Method": "POST"})
    assert response.status_code == 405 and response.headers["Allow"] == "GET, POST"
    assert not any(name.lower().startswith("access-control-") for name in response.headers)


def test_chalice_deploy_defines_every_method_on_every_path():
    """`chalice deploy` uploads this OpenAPI body: API Gateway has no path and no method left to answer itself,
    and every method but the back channel's CORS preflight (a MOCK) goes to the Lambda."""
    paths = TemplatedSwaggerGenerator().generate_swagger(app)["paths"]
    assert_every_method_reaches_the_app(paths)

