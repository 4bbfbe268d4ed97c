"""Issue 12, "Pages that don't trip people": the landing page at /, where sign-in without a pending
authorization lands, and our own 404 for unknown paths (never the gateway's message quoting the
Authorization header)."""

from __future__ import annotations

import json

import pytest

from chalicelib import local_routes
from tests.authorize_support import Browser, add_user, sign_in
from tests.method_support import assert_every_method_reaches_the_app
from tests.package_support import STAGES
from tests.test_cors import preflight
from tests.test_login_pages import assert_secure_page

pytestmark = pytest.mark.store("memory")

BEARER = "Bearer zq7-secret-bearer-token"
HTML = {"Accept": "text/html,application/xhtml+xml"}
UNKNOWN = ("/nope", "/nope/deeper", "/v1/unknown", "/developer/apps/x/y/z", "/register/a/b", "/.well-known/x")


@pytest.fixture(autouse=True)
def greedy_routes(monkeypatch):
    """chalice.test routes `/{proxy+}` as API Gateway does (the local run installs the same matcher)."""
    from chalice.local import RouteMatcher

    monkeypatch.setattr(RouteMatcher, "match_route", local_routes.greedy_match_route(RouteMatcher.match_route))


@pytest.fixture
def user(aws):
    return add_user(aws.store)


@pytest.mark.parametrize("path", UNKNOWN)
@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_unknown_path_is_our_json_404_without_the_authorization_header(http, path, method):
    response = http.request(method, path, headers={"Authorization": BEARER, "Content-Type": "application/json"},
                            body=b"{}")
    assert response.status_code == 404, (path, response.body[:200])
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.body) == {"error": "not_found", "error_description": "there is no such endpoint"}
    assert b"zq7" not in response.body and "zq7" not in json.dumps(dict(response.headers))


def test_a_browser_gets_a_404_page_that_echoes_nothing(http):
    response = http.get("/nope/zq7marker", headers={**HTML, "Authorization": BEARER})
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert_secure_page(response)
    assert "Page not found" in response.body.decode() and b"zq7" not in response.body


def test_back_channel_paths_get_json_even_from_a_browser(http):
    response = http.get("/v1/nope", headers=HTML)
    assert response.status_code == 404 and response.headers["Content-Type"] == "application/json"


def test_known_routes_still_win_over_the_greedy_route(http):
    assert json.loads(http.get("/.well-known/oauth-authorization-server").body)["issuer"]
    assert http.get("/static/style.css").headers["Content-Type"].startswith("text/css")
    assert http.get("/developer/apps").status_code == 303  # to /login
    response = http.post("/token", headers={"Content-Type": "application/x-www-form-urlencoded"}, body=b"")
    assert json.loads(response.body)["error"] != "not_found"


def test_back_channel_preflights_still_answered(http):
    for path in ("/token", "/revoke", "/register", "/register/abc", "/v1/me", "/.well-known/jwks.json"):
        response = preflight(http, path, "POST")
        assert response.status_code == 200, path
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_landing_page_signed_out_explains_and_links(http):
    response = http.get("/", headers=HTML)
    assert response.status_code == 200
    assert_secure_page(response)
    body = response.body.decode()
    for link in ("/login", "/developer/apps", "/account/apps", "/.well-known/openid-configuration",
                 "/.well-known/oauth-authorization-server", "/.well-known/jwks.json"):
        assert f'{link}"' in body, link
    assert "OAuth 2.0 authorization server" in body and "Sign out" not in body


def test_landing_page_other_methods_are_refused(http):
    response = http.post("/", headers={"Authorization": BEARER}, body=b"")
    assert response.status_code == 405 and response.headers["Allow"] == "GET" and b"zq7" not in response.body


def test_sign_in_without_a_pending_request_lands_on_the_signed_in_home(http, user):
    browser = Browser(http)
    response = sign_in(browser)
    body = response.body.decode()
    assert response.status_code == 200 and "You are signed in" in body
    assert 'href="/developer/apps"' in body and 'href="/account/apps"' in body and "Sign out" in body
    home = browser.get("/").body.decode()  # and / itself now knows the user
    assert "You are signed in" in home and "Sign out" in home and 'href="/login"' not in home


@pytest.mark.parametrize("stage", STAGES)
def test_packaged_api_sends_every_unknown_path_to_the_app(packaged, stage):
    """API Gateway: `/` and the greedy `/{proxy+}` for every method (HEAD and OPTIONS too), integrated with
    the Lambda (no MOCK or gateway default); concrete back-channel paths keep their own preflight."""
    template, _ = packaged[stage]
    paths = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    every = {"get", "post", "put", "patch", "delete", "head", "options"}
    assert set(paths["/{proxy+}"]) == every and set(paths["/"]) == every
    for method in [*paths["/{proxy+}"].values(), *paths["/"].values()]:
        assert method["x-amazon-apigateway-integration"]["type"] == "aws_proxy"


@pytest.mark.parametrize("stage", STAGES)
def test_packaged_api_defines_every_method_on_every_resource(packaged, stage):
    """A known path with a method it does not serve (DELETE /token) reaches the app (its 405), as does every
    parent resource (/v1): API Gateway matches a method on every resource, so never answers by itself."""
    template, _ = packaged[stage]
    assert_every_method_reaches_the_app(template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"])


@pytest.mark.parametrize("stage", STAGES)
def test_packaged_api_gateway_own_answer_is_our_404_without_echo(packaged, stage):
    """The backstop: were a request to match no method after all, API Gateway sends our JSON 404, not its 403
    that quotes the Authorization header (the template has no `$` variable: nothing from the request)."""
    template, _ = packaged[stage]
    definition = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    missing = definition["x-amazon-apigateway-gateway-responses"]["MISSING_AUTHENTICATION_TOKEN"]
    assert missing["statusCode"] == 404
    body = missing["responseTemplates"]["application/json"]
    assert json.loads(body) == {"error": "not_found", "error_description": "there is no such endpoint"}
    assert "$" not in body
