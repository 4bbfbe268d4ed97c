"""Property tests through chalice's test client: Z-04 at /authorize (no Location outside the registered
origins) and Z-02-like checks on hypothesis-generated POST /token requests."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chalicelib import clock
from tests.authorize_support import CH, ISS, add_fixture_clients, add_user, signed_in_browser
from tests.test_properties_parsers import _only_the_loopback_port_differs, mutated
from tests.token_helpers import FORM, V

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

HTTP = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# RFC 6749 §5.2: the only error codes the token endpoint may answer with
TOKEN_ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
                "unsupported_grant_type", "invalid_scope"}

# --- Z-04 through /authorize -----------------------------------------------------------------------

REGISTERED = {
    "c1": ["https://c1.example/cb"],
    "p1": ["https://p1.example/cb"],
    "n1": ["http://127.0.0.1/cb", "http://[::1]/cb"],
    "m1": ["https://m1.example/a", "https://m1.example/b"],
    "q1": ["https://q1.example/cb?x=1"],
}


@pytest.fixture
def browser(http, aws):
    """Signed in, with every fixture client approved: a matching request is answered with a code at once."""
    add_fixture_clients(aws.store)
    user = add_user(aws.store)
    for client_id in REGISTERED:
        aws.store.save_consent_scopes(user.user_id, client_id, ["read:analysis", "read:project"], clock.now())
    return signed_in_browser(http)


@st.composite
def authorization_requests(draw: st.DrawFn) -> tuple[str, str, str | None]:
    """A valid request for a fixture client, with zero to two parameters broken."""
    client_id = draw(st.sampled_from(sorted(REGISTERED)))
    registered = draw(st.sampled_from(REGISTERED[client_id]))
    params = {"response_type": "code", "client_id": client_id, "scope": "read:analysis", "state": "S1",
              "code_challenge": CH, "code_challenge_method": "S256", "redirect_uri": registered}
    breakage = {
        "redirect_uri": st.one_of(
            mutated().map(lambda case: case[1]),  # a mutation of some registration (maybe another client's)
            st.sampled_from(["https://evil.example/cb", "//evil.example", "javascript:alert(1)//", "",
                             "http://127.0.0.1:51004/cb", "http://[::1]:61023/cb", "http://localhost/cb"])),
        "response_type": st.sampled_from(["token", "code code", ""]),
        "scope": st.sampled_from(["admin", "read:analysis write:project", ""]),
        "state": st.text(max_size=12),
        "code_challenge": st.sampled_from(["short", "", CH + "\n"]),
        "code_challenge_method": st.sampled_from(["plain", ""]),
    }
    for name in draw(st.lists(st.sampled_from(sorted(breakage)), unique=True, max_size=2)):
        params[name] = draw(breakage[name])
    pairs = list(params.items())
    extra = draw(st.integers(0, 9))
    if extra == 0:
        pairs.pop(draw(st.integers(0, len(pairs) - 1)))  # a parameter left out
    elif extra == 1:
        pairs.append(draw(st.sampled_from(pairs)))  # a parameter sent twice
    requested = dict(pairs).get("redirect_uri")
    return client_id, "/authorize?" + urlencode(pairs, quote_via=quote, safe=""), requested


def _lands_on_a_registered_uri(client_id: str, location: str, requested: str | None) -> bool:
    """The Location is a registered URI (or its loopback port variant) followed by the response params."""
    candidates = set(REGISTERED[client_id]) | ({requested} if requested else set())
    for base in candidates:
        if location.startswith(base + ("&" if "?" in base else "?")):
            if any(base == r or _only_the_loopback_port_differs(r, base) for r in REGISTERED[client_id]):
                return True
    return False


def _n1_request(redirect_uri: str) -> tuple[str, str, str]:
    query = urlencode([("response_type", "code"), ("client_id", "n1"), ("scope", "read:analysis"), ("state", "S1"),
                       ("code_challenge", CH), ("code_challenge_method", "S256"), ("redirect_uri", redirect_uri)],
                      quote_via=quote, safe="")
    return "n1", "/authorize?" + query, redirect_uri


@HTTP
@given(authorization_requests())
@example(_n1_request("http://127.0.0.1:5000/c\r\nb"))  # was matched: CR LF in the Location
@example(_n1_request("HTTP://127.0.0.1:5000/cb"))  # was matched: urlsplit lowercases the scheme
@example(_n1_request("http://[::1]:61023/cb"))
def test_z04_authorize_never_redirects_outside_the_registered_origins(browser, request_case):
    client_id, path, requested = request_case
    response = browser.get(path)
    assert response.status_code < 500, response.body[:300]
    location = response.headers.get("Location")
    if location is None:
        return
    assert "\r" not in location and "\n" not in location
    assert location.startswith(ISS + "/") or _lands_on_a_registered_uri(client_id, location, requested), (
        path, location)


# --- Z-02-like checks on POST /token ---------------------------------------------------------------

def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()


@st.composite
def token_requests(draw: st.DrawFn, world) -> tuple[dict[str, str], bytes, list[str]]:
    """(headers, body, values that must never come back): a valid request with zero to two things broken."""
    name = draw(st.sampled_from(["C1", "POST1", "P1", "CC1", "NORT"]))
    client = world.clients[name]
    method = client.record.auth_method
    secret = client.secret or "no-secret"
    code = world.issue_code(client) if client.redirect_uris else "no-code"
    params: dict[str, str] = (
        {"grant_type": "client_credentials", "scope": "read:analysis"} if name == "CC1" else
        {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
         "code_verifier": V})
    auth = {"client_secret_basic": "basic", "client_secret_post": "post"}.get(method, "none")
    content_type: str | None = draw(st.sampled_from([FORM["Content-Type"], FORM["Content-Type"] + "; charset=UTF-8"]))
    presented = secret
    broken = draw(st.lists(st.sampled_from([
        "wrong_secret", "auth", "grant_type", "code", "redirect_uri", "verifier", "scope", "extra",
        "duplicate", "missing", "content_type", "encoding",
    ]), unique=True, max_size=2))
    if "wrong_secret" in broken:
        presented = secret + "x"
    if "auth" in broken:
        auth = draw(st.sampled_from(["basic", "post", "none", "both", "junk"]))
    if "grant_type" in broken:
        params["grant_type"] = draw(st.sampled_from(["refresh_token", "client_credentials", "password", "foo", ""]))
    if "code" in broken:
        params["code"] = draw(st.sampled_from(["bogus", code + "x", ""]))
    if "redirect_uri" in broken:
        params["redirect_uri"] = draw(st.sampled_from(["https://evil.example/cb", "", "https://c2.example/cb"]))
    if "verifier" in broken:
        params["code_verifier"] = draw(st.sampled_from([V[:-1] + "A", "", "short", V + "\n"]))
    if "scope" in broken:
        params["scope"] = draw(st.sampled_from(["admin", "read:analysis write:project", "", "read:project"]))
    if "extra" in broken:
        params["foo"] = "bar"
    headers: dict[str, str] = {}
    pairs: list[tuple[str, str]] = []
    if auth in ("basic", "both"):
        headers["Authorization"] = _basic(client.client_id, presented)
    if auth in ("post", "both"):
        pairs += [("client_id", client.client_id), ("client_secret", presented)]
    if auth == "none":
        pairs.append(("client_id", client.client_id))
    if auth == "junk":
        headers["Authorization"] = draw(st.sampled_from(["Basic", "Basic !!", "Bearer x", "Basic " + "A" * 2000]))
    pairs += list(params.items())
    if "missing" in broken:
        pairs.pop(draw(st.integers(0, len(pairs) - 1)))
    if "duplicate" in broken:
        pairs.append(draw(st.sampled_from(pairs)))
    body = urlencode(pairs).encode()
    if "encoding" in broken:
        body = draw(st.sampled_from([body + b"&x=%zz", b"\xff" + body, body.replace(b"&", b";"),
                                     json.dumps(dict(pairs)).encode()]))
    if "content_type" in broken:
        content_type = draw(st.sampled_from(["application/json", "text/plain", "multipart/form-data", None]))
    if content_type:
        headers["Content-Type"] = content_type
    return headers, body, [value for value in (secret, presented, code, V) if value != "no-code"]


@HTTP
@given(st.data())
def test_z02_token_responses_keep_their_contract(http, world, data):
    clock.travel(61)  # a fresh throttle window per example (the failure counter is T-27's business)
    headers, body, secrets = data.draw(token_requests(world))
    response = http.post("/token", headers=headers, body=body)
    assert response.status_code < 500, response.body[:300]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "application/json"
    payload = json.loads(response.body)
    text = response.body.decode()
    for secret in secrets:
        assert secret not in text, "the response echoes a secret, a code or a verifier"
    if response.status_code == 200:
        assert payload["token_type"] == "Bearer" and payload["access_token"]
        return
    assert 400 <= response.status_code < 500
    assert payload["error"] in TOKEN_ERRORS, payload
    assert (response.status_code == 401) is (payload["error"] == "invalid_client"), (response.status_code, payload)
    if response.status_code == 401:
        assert ("WWW-Authenticate" in response.headers) is ("Authorization" in headers)


# --- the same contract at POST /register (RFC 7591 §3.2.2; its bearer token answers per RFC 6750 §3.1) ------

INITIAL_TOKEN = "initial-access-token-for-property-tests"
REGISTER_ERRORS = {"invalid_request", "invalid_token", "invalid_redirect_uri", "invalid_client_metadata"}
metadata_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=20),
    st.lists(st.sampled_from(["https://app.example/cb", "http://127.0.0.1/cb", "javascript:x", "", "https://a#b"]),
             max_size=3),
    st.lists(st.sampled_from(["authorization_code", "refresh_token", "client_credentials", "password", ""]),
             max_size=3),
)


@pytest.fixture
def initial_token(aws):
    from chalicelib.crypto.secrets import digest
    from chalicelib.records import RegistrationTokenRecord

    now = clock.now()
    aws.store.put_registration_token(RegistrationTokenRecord(digest(INITIAL_TOKEN), now, now + 86400, "tests"))
    return INITIAL_TOKEN


@HTTP
@given(
    st.sampled_from(["valid", "valid", "none", "wrong", "basic", "empty"]),
    st.dictionaries(st.sampled_from(["client_name", "redirect_uris", "grant_types", "token_endpoint_auth_method",
                                     "scope", "application_type", "client_secret", "jwks_uri"]),
                    metadata_values, max_size=5),
    st.sampled_from(["application/json", "application/json", "application/x-www-form-urlencoded", None]),
)
@example("valid", {"client_name": "App", "redirect_uris": ["https://app.example/cb"]}, "application/json")
@example("wrong", {"client_name": "App", "redirect_uris": ["https://app.example/cb"]}, "application/json")
def test_z02_register_answers_keep_their_contract(http, initial_token, auth, metadata, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    if auth != "none":
        headers["Authorization"] = {"valid": f"Bearer {initial_token}", "wrong": "Bearer nope",
                                    "basic": _basic("a", "b"), "empty": "Bearer "}[auth]
    response = http.post("/register", headers=headers, body=json.dumps(metadata).encode())
    assert response.status_code < 500, response.body[:300]
    assert response.headers["Cache-Control"] == "no-store"
    payload = json.loads(response.body)
    assert initial_token not in response.body.decode()
    if response.status_code == 201:
        assert auth == "valid" and payload["client_id"] and payload["registration_access_token"]
        return
    assert 400 <= response.status_code < 500 and payload["error"] in REGISTER_ERRORS, payload
    assert (response.status_code == 401) is (payload["error"] == "invalid_token"), (response.status_code, payload)
    assert (response.status_code == 401) is (auth != "valid"), (auth, payload)
