"""Consent, prompts, the parked request and code issuance (SECURITY-TESTS.md L-04..L-07, L-13, L-15, A-40, A-41)."""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from chalicelib.records import ClientRecord
from chalicelib.store.dynamo import Item, shared_connection
from tests.authorize_support import (
    C1_URI,
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
    hidden,
    location,
    request_id_of,
    response_params,
    sign_in,
    signed_in_browser,
)
from tests.race_support import all_at_once
from tests.store_support import pending_authorization_requests, scan_kinds

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


@pytest.fixture
def user(aws):
    add_fixture_clients(aws.store)
    return add_user(aws.store)


@pytest.fixture
def browser(http, user):
    return signed_in_browser(http)


def codes() -> list[Item]:
    return [item for item in Item.scan() if item.kind == "code"]


def kinds(aws) -> dict[str, int]:
    return scan_kinds(aws.store)


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_no_session_means_login_first_and_no_code(http, user, aws):
    response = Browser(http).get(az())
    assert response.status_code == 302
    assert location(response).startswith(f"{ISS}/login?request=")
    assert codes() == [] and kinds(aws).get("authreq") == 1


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_full_flow_login_consent_code(http, user, aws):
    browser = Browser(http)
    start = browser.get(az(scope="read:analysis read:project", state="st&=1"))
    request_id = request_id_of(location(start))
    after_login = sign_in(browser, request_id=request_id)
    page = browser.follow(after_login)
    body = page.body.decode()
    assert page.status_code == 200
    assert "C1</span> wants to access your Clipron account" in body
    assert "See your code analyses and their results" in body and "See your projects" in body
    assert ">Allow</button>" in body and ">Deny</button>" in body and "c1.example" in body
    response = decide(browser, page, "allow")
    assert response.status_code == 303
    params = response_params(response)
    assert location(response).startswith(C1_URI + "?code=")
    assert params["state"] == "st&=1" and params["iss"] == ISS
    [item] = codes()
    record = aws.store.get_code(item.pk.removeprefix("code#"))
    assert record.code_digest == digest(params["code"])  # only the digest is stored
    assert params["code"] not in str(item.data)
    assert record.client_id == "c1" and record.user_id == user.user_id
    assert record.redirect_uri == C1_URI and record.redirect_uri_given is True
    assert record.scope == "read:analysis read:project"
    assert record.code_challenge is not None and record.grant_id
    assert record.expires_at - clock.now() <= aws.settings.code_seconds
    assert pending_authorization_requests(aws.store) == 0  # the parked request was consumed
    assert aws.store.get_consent(user.user_id, "c1").scopes == ["read:analysis", "read:project"]


def test_redirect_response_hygiene(browser):
    page = consent_page(browser, az())
    response = decide(browser, page, "allow")
    assert response.status_code == 303  # after a POST: never 307, never a re-post
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_deny_redirects_with_access_denied_state_and_iss(browser, aws, user):
    page = consent_page(browser, az(state="keep me"))
    response = decide(browser, page, "deny")
    assert_redirect_error(response, "access_denied", state="keep me")
    assert codes() == []
    assert aws.store.get_consent(user.user_id, "c1") is None  # nothing remembered
    assert_page(decide(browser, page, "allow"))  # the denied request cannot be approved afterwards


def test_remembered_consent_skips_the_page_for_same_or_fewer_scopes(browser):
    decide(browser, consent_page(browser, az(scope="read:analysis read:project")), "allow")
    for scope in ("read:analysis read:project", "read:project"):
        response = browser.get(az(scope=scope))
        assert response.status_code == 302
        assert "code" in response_params(response)
    more = browser.get(az(scope="read:analysis write:analysis"))
    assert location(more).startswith(f"{ISS}/consent?request=")


def test_prompt_consent_forces_the_page(browser):
    decide(browser, consent_page(browser, az()), "allow")
    response = browser.get(az(prompt="consent"))
    assert location(response).startswith(f"{ISS}/consent?request=")
    assert browser.follow(response).status_code == 200


def test_prompt_login_forces_a_new_login(browser, aws):
    decide(browser, consent_page(browser, az()), "allow")
    clock.travel(5)
    start = browser.get(az(prompt="login"))
    assert location(start).startswith(f"{ISS}/login?request=")
    request_id = request_id_of(location(start))
    # skipping the login page with the old session does not work
    skipped = browser.get(f"/consent?request={request_id}")
    assert skipped.status_code == 302 and location(skipped).startswith(f"{ISS}/login?request=")
    clock.travel(1)
    after_login = sign_in(browser, request_id=request_id)
    response = browser.follow(after_login)
    assert "code" in response_params(response)  # consent was remembered: the code comes at once


def test_prompt_none(http, browser, user):
    assert_redirect_error(Browser(http).get(az(prompt="none")), "login_required")
    assert_redirect_error(browser.get(az(prompt="none")), "consent_required")
    decide(browser, consent_page(browser, az()), "allow")
    assert "code" in response_params(browser.get(az(prompt="none")))
    assert_redirect_error(browser.get(az(prompt="none login")), "invalid_request")


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_consent_csrf_token_from_another_session_is_refused(http, browser, user):
    page = consent_page(browser, az())
    other = Browser(http)
    sign_in(other)
    form = {"csrf_token": hidden(page, "csrf_token"), "request": hidden(page, "request"), "decision": "allow"}
    assert other.post("/consent", form).status_code == 403
    assert Browser(http).post("/consent", form).status_code == 403  # no session at all
    assert codes() == []


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_consent_csrf_token_from_another_request_is_refused(browser):
    first = consent_page(browser, az(state="one"))
    second = consent_page(browser, az(state="two"))
    form = {"csrf_token": hidden(first, "csrf_token"), "request": hidden(second, "request"), "decision": "allow"}
    assert browser.post("/consent", form).status_code == 403
    assert codes() == []


def test_consent_from_another_site_is_refused(browser):
    page = consent_page(browser, az())
    form = {"csrf_token": hidden(page, "csrf_token"), "request": hidden(page, "request"), "decision": "allow"}
    assert browser.post("/consent", form, headers={"Origin": "https://evil.example"}).status_code == 403
    assert browser.post("/consent", form, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_approving_by_get_is_not_allowed(browser):
    page = consent_page(browser, az())
    response = browser.get(f"/consent?request={hidden(page, 'request')}&decision=allow")
    assert response.status_code == 405
    assert codes() == []


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_tampered_hidden_fields_are_ignored(browser, aws):
    page = consent_page(browser, az(scope="read:analysis"))
    form = {"csrf_token": hidden(page, "csrf_token"), "request": hidden(page, "request"), "decision": "allow",
            "client_id": "c2", "scope": "read:analysis write:analysis", "redirect_uri": "https://evil.example/cb",
            "state": "forged"}
    response = browser.post("/consent", form)
    params = response_params(response)
    assert location(response).startswith(C1_URI + "?") and params["state"] == "S1"
    [item] = codes()
    record = aws.store.get_code(item.pk.removeprefix("code#"))
    assert record.client_id == "c1" and record.scope == "read:analysis"


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_consent_replay_gives_an_error_page_and_no_second_code(browser):
    page = consent_page(browser, az())
    assert decide(browser, page, "allow").status_code == 303
    replay = decide(browser, page, "allow")
    assert_page(replay)
    assert "expired or was already used" in replay.body.decode()
    assert len(codes()) == 1
    assert_page(browser.get(f"/consent?request={hidden(page, 'request')}"))  # the finished id is gone too


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_expired_parked_request_gives_an_error_page(browser, aws):
    page = consent_page(browser, az())
    clock.travel(aws.settings.authorization_request_seconds)
    assert_page(decide(browser, page, "allow"))
    assert_page(browser.get(f"/consent?request={hidden(page, 'request')}"))
    assert codes() == []


def test_unknown_request_id_gives_an_error_page(browser):
    assert_page(browser.get("/consent?request=nope"))
    assert_page(browser.get("/consent"))


def test_client_name_and_state_are_escaped(http, aws, user):
    add_client(aws.store, "xss", ["https://xss.example/cb"], name=XSS)
    browser = Browser(http)
    sign_in(browser)
    page = consent_page(browser, az(client_id="xss", redirect_uri="https://xss.example/cb", state=XSS))
    body = page.body.decode()
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in body
    assert response_params(decide(browser, page, "allow"))["state"] == XSS
    error = http.get(az(extra=[("<script>x", "1"), ("<script>x", "2")], client_id="nope"))
    assert "<script>" not in error.body.decode()


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_fast_path_makes_at_most_four_dynamodb_calls_and_parks_nothing(browser, aws):
    decide(browser, consent_page(browser, az()), "allow")
    calls: list[str] = []
    events = shared_connection().client.meta.events
    handler = events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    try:
        response = browser.get(az(state="fast"))
    finally:
        events.unregister("before-call.dynamodb", handler)
    assert "code" in response_params(response)
    # session, its user (still enabled, same generation), consent, code (client from the warm cache)
    assert calls == ["GetItem", "GetItem", "GetItem", "PutItem"]
    assert pending_authorization_requests(aws.store) == 0


def test_codes_are_unpredictable_and_short_lived(browser, aws):
    decide(browser, consent_page(browser, az()), "allow")
    issued = [response_params(browser.get(az()))["code"] for _ in range(20)]
    assert len(set(issued)) == 20
    assert all(len(code) == 43 for code in issued)  # 256 bits, base64url
    assert len({code[:6] for code in issued}) == 20
    assert aws.settings.code_seconds <= 600


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_client_deleted_while_parked(browser, aws):
    page = consent_page(browser, az(client_id="c2", redirect_uri="https://c2.example/cb"))
    aws.store.delete_client(ClientRecord("c2", "C2", [], [], [], "client_secret_basic"))
    aws.clients.forget("c2")
    assert_page(decide(browser, page, "allow"))
    assert codes() == []


def test_consent_and_resuming_login_allow_the_form_to_end_at_the_client_only(http, aws, user):
    """Browsers apply CSP form-action to the redirects after a form post: the validated origin is listed."""
    browser = Browser(http)
    start = browser.get(az(client_id="n1", redirect_uri="http://127.0.0.1:51004/cb"))
    login = browser.follow(start)
    assert "form-action 'self' http://127.0.0.1:51004;" in login.headers["Content-Security-Policy"]
    page = browser.follow(sign_in(browser, request_id=request_id_of(location(start))))
    policy = page.headers["Content-Security-Policy"]
    assert "form-action 'self' http://127.0.0.1:51004;" in policy and "frame-ancestors 'none'" in policy
    assert "form-action 'self';" in Browser(http).get("/login").headers["Content-Security-Policy"]


def test_a_redirect_origin_unfit_for_a_header_is_never_pasted_into_the_policy(http, aws, user):
    add_client(aws.store, "odd", ["https://odd.example;script-src_*/cb"])
    browser = Browser(http)
    sign_in(browser)
    page = consent_page(browser, az(client_id="odd", redirect_uri="https://odd.example;script-src_*/cb"))
    assert page.headers["Content-Security-Policy"].count(";") == 5
    assert "script-src" not in page.headers["Content-Security-Policy"]


@pytest.mark.store("dynamo")  # a race on DynamoDB's conditional writes
def test_concurrent_decisions_on_one_parked_request_issue_one_code(aws, user):
    """The parked request is consumed by a conditional update: of 8 racing approvals exactly one wins."""

    from chalicelib.oauth.authorize import ParkedRequestGone
    from tests.authorize_support import CH

    flow = aws.authorization_flow
    pairs = [("response_type", "code"), ("client_id", "c1"), ("code_challenge", CH), ("code_challenge_method", "S256")]
    step = flow.start(pairs, None)  # no session: the request is parked for the login
    request_id = step.request_id
    _, session = aws.sessions.start(user.user_id)
    outcomes = all_at_once(*[lambda: flow.decide(request_id, session, allow=True)] * 8)
    assert sorted(isinstance(o, ParkedRequestGone) for o in outcomes) == [False] + [True] * 7, outcomes
    assert len(codes()) == 1


def test_an_unexpected_failure_is_an_html_page_without_a_trace(browser, monkeypatch):
    from chalicelib.oauth import authorize

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(authorize.AuthorizationFlow, "start", broken)
    response = browser.get(az())
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")
    assert "secret internals" not in response.body.decode() and "Traceback" not in response.body.decode()
