"""Helpers for the front-channel tests: fixture clients, request URLs, a tiny cookie-keeping browser."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from chalicelib.oauth import accounts
from chalicelib.records import ClientRecord, ClientSecret, UserRecord

ISS = "http://127.0.0.1:8000"
# RFC 7636 Appendix B
V = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CH = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
C1_URI = "https://c1.example/cb"
EMAIL = "ada@example.com"
PASSWORD = "correct horse battery"
SCOPES = ["read:analysis", "read:project", "write:analysis"]


def add_client(store, client_id: str, uris: list[str], *, public: bool = False, grant_types=None,
               scopes=None, name: str | None = None, verified: bool = True) -> ClientRecord:
    """An operator-registered (verified) client unless `verified=False` (a self-registered app)."""
    client = ClientRecord(
        client_id=client_id,
        name=name or client_id.upper(),
        redirect_uris=uris,
        scopes=list(scopes or SCOPES),
        grant_types=list(grant_types or ["authorization_code", "refresh_token"]),
        auth_method="none" if public else "client_secret_basic",
        app_type="native" if public else "web",
        secrets=[] if public else [ClientSecret(digest(client_id + "-secret"))],
        verified=verified,
    )
    store.create_client(client)
    return client


def add_fixture_clients(store) -> None:
    """The catalogue's fixture clients (SECURITY-TESTS.md)."""
    add_client(store, "c1", [C1_URI])
    add_client(store, "c2", ["https://c2.example/cb"])
    add_client(store, "p1", ["https://p1.example/cb"], public=True)
    add_client(store, "n1", ["http://127.0.0.1/cb", "http://[::1]/cb"], public=True)
    add_client(store, "m1", ["https://m1.example/a", "https://m1.example/b"])
    add_client(store, "q1", ["https://q1.example/cb?x=1"])
    add_client(store, "machine", ["https://machine.example/cb"], grant_types=["client_credentials"])


def add_user(store) -> UserRecord:
    """The test user, who signs in with EMAIL and PASSWORD."""
    return accounts.create_user(store, EMAIL, PASSWORD, clock.now())


def az(*drop: str, extra: list[tuple[str, str]] | None = None, **values: str) -> str:
    """`AZ{…}`: the valid request for C1, minus `drop`, with `values` set and `extra` pairs appended."""
    params = {
        "response_type": "code",
        "client_id": "c1",
        "redirect_uri": C1_URI,
        "scope": "read:analysis",
        "state": "S1",
        "code_challenge": CH,
        "code_challenge_method": "S256",
    }
    params.update(values)
    pairs = [(k, v) for k, v in params.items() if k not in drop] + list(extra or [])
    return "/authorize?" + urlencode(pairs, quote_via=quote, safe="")


def location(response) -> str:
    return response.headers["Location"]


def response_params(response) -> dict[str, str]:
    """The parameters the client receives at its redirect URI (each must occur once)."""
    pairs = parse_qsl(urlsplit(location(response)).query, keep_blank_values=True)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), pairs
    return dict(pairs)


def local_path(url: str) -> str:
    assert url.startswith(ISS + "/"), url
    return url[len(ISS):]


def assert_page(response, status: int = 400) -> None:
    """PAGE: an HTML error page, no redirect of any kind toward a client."""
    assert response.status_code == status, (response.status_code, response.body[:300])
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    body = response.body.decode()
    assert "http-equiv" not in body.lower() and "<script" not in body.lower()
    assert "iss=" not in body


def assert_redirect_error(response, error: str, state: str | None = "S1", uri: str = C1_URI) -> dict[str, str]:
    """REDIR(e): to the validated registered URI, with error, the exact state and iss, and no code."""
    assert response.status_code in (302, 303), (response.status_code, response.body[:300])
    assert location(response).split("?")[0] == uri.split("?")[0]
    params = response_params(response)
    assert params["error"] == error, params
    assert params["iss"] == ISS
    assert "code" not in params
    if state is None:
        assert "state" not in params
    else:
        assert params["state"] == state
    return params


class Browser:
    """Keeps cookies between requests to the chalice test client, like a browser would."""

    def __init__(self, http) -> None:
        self.http = http
        self.cookies: dict[str, str] = {}

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _remember(self, response) -> None:
        values = response.headers.get("Set-Cookie") or []
        for line in [values] if isinstance(values, str) else values:
            name, _, rest = line.partition("=")
            value = rest.split(";")[0]
            if "Max-Age=0" in line:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def get(self, path: str, headers: dict[str, str] | None = None):
        response = self.http.get(path, headers=self._headers(headers))
        self._remember(response)
        return response

    def post(self, path: str, form: dict[str, str] | list[tuple[str, str]], headers: dict[str, str] | None = None):
        body = urlencode(form).encode()
        all_headers = self._headers({"Content-Type": "application/x-www-form-urlencoded", **(headers or {})})
        response = self.http.post(path, headers=all_headers, body=body)
        self._remember(response)
        return response

    def follow(self, response):
        return self.get(local_path(location(response)))


def hidden(response, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', response.body.decode())
    assert match, f"no hidden field {name}"
    return match.group(1)


def request_id_of(url: str) -> str:
    return dict(parse_qsl(urlsplit(url).query))["request"]


def sign_in(browser: Browser, email: str = EMAIL, password: str = PASSWORD, request_id: str | None = None):
    """GET the login form, then POST it with its CSRF token; returns the POST's response."""
    form_page = browser.get("/login" + (f"?request={request_id}" if request_id else ""))
    assert form_page.status_code == 200
    form = {"csrf_token": hidden(form_page, "csrf_token"), "email": email, "password": password}
    if request_id:
        form["request"] = request_id
    return browser.post("/login", form)


def signed_in_browser(http) -> Browser:
    """A browser signed in as the test user (add_user)."""
    browser = Browser(http)
    assert sign_in(browser).status_code == 200
    return browser


def consent_page(browser: Browser, authorize_path: str):
    """From an authorization request with a signed-in browser to the consent page."""
    response = browser.get(authorize_path)
    assert response.status_code == 302, response.body[:300]
    page = browser.follow(response)
    assert page.status_code == 200, page.body[:300]
    return page


def decide(browser: Browser, page, decision: str):
    form = {"csrf_token": hidden(page, "csrf_token"), "request": hidden(page, "request"), "decision": decision}
    return browser.post("/consent", form)
