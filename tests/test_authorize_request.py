"""GET/POST /authorize: SECURITY-TESTS.md group A (A-01..A-32). PAGE before the client is trusted, REDIR after."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest

from chalicelib import clock
from chalicelib.records import StoreUnavailable
from tests.authorize_support import (
    C1_URI,
    CH,
    ISS,
    Browser,
    add_client,
    add_fixture_clients,
    add_user,
    assert_page,
    assert_redirect_error,
    az,
    consent_page,
    decide,
    location,
    response_params,
    signed_in_browser,
)
from tests.store_support import pending_authorization_requests

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call


@pytest.fixture
def clients(aws):
    add_fixture_clients(aws.store)
    return aws


@pytest.fixture
def signed_in(http, clients):
    """A browser signed in as a user who already approved every fixture client (codes come at once)."""
    user = add_user(clients.store)
    for client_id in ("c1", "p1", "n1", "m1", "q1"):
        clients.store.save_consent_scopes(user.user_id, client_id, ["read:analysis", "read:project"], clock.now())
    return signed_in_browser(http)


def parked_requests(aws) -> int:
    return pending_authorization_requests(aws.store)


# --- A.1 client_id and redirect_uri ---------------------------------------------------------------


def test_unknown_client_gets_a_page_and_nothing_is_parked(http, clients):
    assert_page(http.get(az(client_id="nope")))
    assert parked_requests(clients) == 0


def test_missing_client_id_gets_a_page(http, clients):
    assert_page(http.get(az("client_id")))
    assert_page(http.get(az(client_id="")))


BAD_REDIRECTS = [
    "https://evil.example/cb",
    # A-04 prefix or path extension
    "https://c1.example/cb/", "https://c1.example/cb/x", "https://c1.example/cb123", "https://c1.example/cbx",
    "https://c1.example/c", "https://c1.example/",
    # A-05 traversal and encoding, nothing normalised
    "https://c1.example/cb/../cb", "https://c1.example/x/../cb", "https://c1.example/%63b",
    "https://c1.example/cb%2F..%2Fevil", "https://c1.example/CB", "https://c1.example/cb%252F",
    # A-06 port, A-13 the port exception is loopback only
    "https://c1.example:8443/cb", "https://c1.example:443/cb", "https://c1.example:444/cb",
    # A-07 host case and lookalikes
    "https://C1.EXAMPLE/cb", "https://c1.example./cb", "https://xn--c1-exmple-0ob.example/cb",
    # A-08 scheme
    "http://c1.example/cb", "javascript:alert(1)//", "data:text/html,hi", "//evil.example",
    # A-09 userinfo and host confusion
    "https://c1.example@evil.example/cb", "https://evil.example#@c1.example/cb",
    "https://evil.example\\@c1.example/cb", "https://c1.example.evil.example/cb", "https://evil.example?c1.example/cb",
    # A-10 fragment, A-11 query added
    "https://c1.example/cb#x", "https://c1.example/cb?x=1",
]


def test_unregistered_redirect_uri_gets_a_page(http, clients):
    for redirect_uri in BAD_REDIRECTS:
        assert_page(http.get(az(redirect_uri=redirect_uri)))
    assert parked_requests(clients) == 0


def test_query_of_registered_uri_must_match_exactly(http, clients):
    for redirect_uri in ["https://q1.example/cb?x=2", "https://q1.example/cb?x=1&y=2", "https://q1.example/cb",
                         "https://q1.example/cb?x=1#f"]:
        assert_page(http.get(az(client_id="q1", redirect_uri=redirect_uri)))


def test_registered_query_is_kept_and_parameters_appended(signed_in):
    response = signed_in.get(az(client_id="q1", redirect_uri="https://q1.example/cb?x=1"))
    assert response.status_code == 302
    assert location(response).startswith("https://q1.example/cb?x=1&code=")
    params = response_params(response)
    assert params["x"] == "1" and params["state"] == "S1" and params["iss"] == ISS and params["code"]


def test_native_loopback_redirect_accepts_any_port(signed_in):
    # a loopback native app is asked for consent every time (README: consent policy), then redirected
    for redirect_uri in ["http://127.0.0.1:51004/cb", "http://[::1]:61023/cb", "http://127.0.0.1/cb"]:
        response = decide(signed_in, consent_page(signed_in, az(client_id="n1", redirect_uri=redirect_uri)), "allow")
        assert response.status_code == 303
        assert location(response).startswith(redirect_uri + "?code=")


def test_loopback_any_port_is_for_native_apps_only(http, clients):
    """RFC 8252 §7.3 is for native apps: a confidential web client's loopback URI matches exactly."""
    add_client(clients.store, "w1", ["http://127.0.0.1/cb", "http://[::1]:8080/cb"])
    for redirect_uri in ["http://127.0.0.1:51004/cb", "http://[::1]/cb", "http://[::1]:8081/cb"]:
        assert_page(http.get(az(client_id="w1", redirect_uri=redirect_uri)))
    assert_redirect_error(http.get(az(client_id="w1", redirect_uri="http://[::1]:8080/cb", scope="nope")),
                          "invalid_scope", uri="http://[::1]:8080/cb")


def test_loopback_exception_covers_only_the_port(http, clients):
    for redirect_uri in ["http://127.0.0.1:51004/other", "http://localhost:51004/cb", "http://127.0.0.2/cb",
                         "https://127.0.0.1:51004/cb", "http://user@127.0.0.1:51004/cb"]:
        assert_page(http.get(az(client_id="n1", redirect_uri=redirect_uri)))


def test_several_registered_uris_require_the_parameter(http, clients, signed_in):
    assert_page(http.get(az("redirect_uri", client_id="m1")))
    response = signed_in.get(az(client_id="m1", redirect_uri="https://m1.example/b"))
    assert location(response).startswith("https://m1.example/b?code=")


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_single_registered_uri_is_used_when_omitted(signed_in, aws):
    """Policy pinned (A-15): with exactly one registered URI the parameter may be omitted."""
    response = signed_in.get(az("redirect_uri"))
    assert response.status_code == 302
    assert location(response).startswith(C1_URI + "?code=")
    code_record = _only_code(aws)
    assert code_record.redirect_uri == C1_URI and code_record.redirect_uri_given is False


def test_duplicated_identity_parameters_get_a_page(http, clients):
    for extra in [("client_id", "c2"), ("client_id", "c1"), ("redirect_uri", C1_URI)]:
        response = http.get(az(extra=[extra]))
        assert_page(response)
        assert "more than once" in response.body.decode()


def test_bad_redirect_uri_wins_over_other_errors(http, clients):
    for bad in [{"scope": "bogus"}, {"response_type": "token"}, {"code_challenge_method": "plain"}]:
        assert_page(http.get(az(redirect_uri="https://evil.example/cb", **bad)))


def test_client_lookup_failure_gets_a_503_page_never_a_redirect(http, clients, monkeypatch):
    def broken(client_id):
        raise StoreUnavailable("GetItem timed out")

    monkeypatch.setattr(clients.store, "get_client", broken)
    clients.clients.forget("c1")
    response = http.get(az())
    assert_page(response, 503)


# --- A.2 other parameters -------------------------------------------------------------------------


def test_duplicated_parameters_are_refused_not_chosen(http, clients):
    for name, value in [("scope", "write:analysis"), ("response_type", "code"), ("code_challenge", "X" * 43),
                        ("code_challenge_method", "S256")]:
        assert_redirect_error(http.get(az(extra=[(name, value)])), "invalid_request")


def test_duplicated_state_gets_an_error_without_state(http, clients):
    assert_redirect_error(http.get(az(extra=[("state", "S2")])), "invalid_request", state=None)


def test_missing_response_type(http, clients):
    assert_redirect_error(http.get(az("response_type")), "invalid_request")


def test_unsupported_response_type(http, clients):
    for response_type in ["token", "id_token", "code token", "CODE", "code code", "code "]:
        assert_redirect_error(http.get(az(response_type=response_type)), "unsupported_response_type")


def test_client_without_the_code_grant_is_unauthorized(http, clients):
    response = http.get(az(client_id="machine", redirect_uri="https://machine.example/cb"))
    assert_redirect_error(response, "unauthorized_client", uri="https://machine.example/cb")


def test_invalid_scope_redirects_only_to_the_registered_uri(http, clients):
    for scope in ["bogus", "read:analysis write:project", 'read:analysis "x"', "read:analysis\\",
                  "read:analysis  read:project", "read:analysis\x01", " read:analysis"]:
        assert_redirect_error(http.get(az(scope=scope)), "invalid_scope")


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_scope_order_and_parameter_order_do_not_matter(signed_in, aws):
    pairs = [("state", "S1"), ("code_challenge_method", "S256"), ("scope", "read:project read:analysis"),
             ("client_id", "c1"), ("code_challenge", CH), ("redirect_uri", C1_URI), ("response_type", "code")]
    response = signed_in.get("/authorize?" + urlencode(pairs))
    assert "code" in response_params(response)
    assert _only_code(aws).scope == "read:analysis read:project"


def test_omitted_scope_means_the_clients_scopes(http, clients):
    """Default scope = the client's allowed scopes; the consent page lists them all."""
    browser = Browser(http)
    response = browser.get(az("scope"))
    assert response.status_code == 302 and "/login?request=" in location(response)


def test_unknown_parameters_are_ignored(signed_in):
    assert "code" in response_params(signed_in.get(az(extra=[("extra", "foobar"), ("nonce", "n")])))


def test_empty_challenge_counts_as_absent_for_a_public_client(http, clients):
    response = http.get(az(client_id="p1", redirect_uri="https://p1.example/cb", code_challenge=""))
    assert_redirect_error(response, "invalid_request", uri="https://p1.example/cb")
    response = http.get(az("code_challenge_method", client_id="p1", redirect_uri="https://p1.example/cb",
                           code_challenge=""))
    params = assert_redirect_error(response, "invalid_request", uri="https://p1.example/cb")
    assert "code challenge required" in params["error_description"]


def test_empty_state_counts_as_absent(signed_in):
    params = response_params(signed_in.get(az(state="")))
    assert "state" not in params and "code" in params


def test_no_state_sent_none_returned(signed_in, http):
    assert "state" not in response_params(signed_in.get(az("state")))
    assert "state" not in response_params(http.get(az("state", scope="bogus")))


STATES = ["a&b=c+d%20e#f", "with space", "ünïcødé ✓ 雪", "x" * 2048, "'\"<>;,/?:@"]


def test_state_round_trips_byte_exact_on_success_and_errors(signed_in, http):
    for state in STATES:
        assert response_params(signed_in.get(az(state=state)))["state"] == state
        assert_redirect_error(http.get(az(state=state, scope="bogus")), "invalid_scope", state=state)


def test_state_is_percent_encoded_in_the_location(signed_in):
    raw = location(signed_in.get(az(state="a&b=c d#e+")))
    assert "state=a%26b%3Dc%20d%23e%2B&" in raw
    assert "#" not in raw


def test_too_long_state_is_refused_never_truncated(http, clients):
    assert_redirect_error(http.get(az(state="x" * 2049)), "invalid_request", state=None)


def test_iss_is_on_every_redirect_and_encoded_once(signed_in, http):
    assert f"iss={quote(ISS, safe='')}" in location(signed_in.get(az()))
    assert f"iss={quote(ISS, safe='')}" in location(http.get(az(scope="bogus")))


def test_page_carries_no_iss(http, clients):
    response = http.get(az(client_id="nope"))
    assert_page(response)


def test_post_with_a_form_behaves_like_get(signed_in):
    form = dict(parse_qsl(urlsplit(az()).query))
    response = signed_in.post("/authorize", form)
    assert response.status_code == 303
    params = response_params(response)
    assert params["state"] == "S1" and params["code"]


def test_post_with_a_form_reports_errors_like_get(http, clients):
    form = dict(parse_qsl(urlsplit(az(scope="bogus")).query))
    body = urlencode(form).encode()
    response = http.post("/authorize", headers={"Content-Type": "application/x-www-form-urlencoded"}, body=body)
    assert_redirect_error(response, "invalid_scope")


def test_post_with_json_is_invalid_request(http, clients):
    body = b'{"response_type": "code", "client_id": "c1"}'
    response = http.post("/authorize", headers={"Content-Type": "application/json"}, body=body)
    assert_page(response, 400)
    assert "application/x-www-form-urlencoded" in response.body.decode()


def test_no_cors(http, clients):
    response = http.get(az(), headers={"Origin": "https://evil.example"})
    assert not [h for h in response.headers if h.lower().startswith("access-control-allow")]
    # the preflight (the test client cannot read its empty body, so ask the local gateway directly)
    preflight = http._local_gateway.handle_request(
        method="OPTIONS", path="/authorize", body=b"",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    headers = {**preflight.get("headers", {}), **preflight.get("multiValueHeaders", {})}
    assert "Access-Control-Allow-Origin" not in headers


def test_other_methods_are_not_allowed(http, clients):
    for method in ["PUT", "PATCH", "DELETE"]:
        assert http.request(method, az()).status_code == 405


# --- A.3 PKCE -------------------------------------------------------------------------------------


def test_public_client_must_use_pkce(http, clients):
    response = http.get(az("code_challenge", "code_challenge_method", client_id="p1",
                           redirect_uri="https://p1.example/cb"))
    params = assert_redirect_error(response, "invalid_request", uri="https://p1.example/cb")
    assert "code challenge required" in params["error_description"]


def test_only_s256(http, clients):
    for method in ["plain", "S512", "s256", "S256 "]:
        assert_redirect_error(http.get(az(code_challenge_method=method)), "invalid_request")


def test_method_omitted_is_never_taken_as_s256(http, clients):
    assert_redirect_error(http.get(az("code_challenge_method")), "invalid_request")


def test_method_without_challenge(http, clients):
    assert_redirect_error(http.get(az("code_challenge")), "invalid_request")


def test_challenge_syntax(http, clients):
    """An S256 challenge is 43 base64url characters; anything else is refused (also 128 unreserved ones)."""
    for challenge in ["A" * 42, "A" * 44, "A" * 128, "A" * 129, "A" * 42 + "+", "A" * 42 + "/", "A" * 42 + "=",
                      "A" * 42 + " ", "A" * 42 + "é", "A" * 42 + ".", "A" * 42 + "\x00"]:
        assert_redirect_error(http.get(az(code_challenge=challenge)), "invalid_request")


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_confidential_client_may_omit_pkce_and_the_code_records_it(signed_in, aws):
    """Policy: PKCE is required for public clients; a confidential client's code without one is bound to none."""
    response = signed_in.get(az("code_challenge", "code_challenge_method"))
    assert "code" in response_params(response)
    assert _only_code(aws).code_challenge is None


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_the_code_is_bound_to_the_challenge(signed_in, aws):
    response_params(signed_in.get(az()))
    assert _only_code(aws).code_challenge == CH


def _only_code(aws):
    from chalicelib.store.dynamo import Item

    codes = [item for item in Item.scan() if item.kind == "code"]
    assert len(codes) == 1
    return aws.store.get_code(codes[0].pk.removeprefix("code#"))
