"""Throttling (issue 11, README "Throttling"): login and client authentication reserve before they
verify, limits per source, per account+source (with exponential backoff), per account (known devices
exempt) and globally, and no limit an attacker can use to lock a real user or client out."""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable
from urllib.parse import urlencode

import pytest
from chalice.local import LambdaEventConverter

from chalicelib import clock, wiring
from chalicelib.crypto.secrets import digest
from chalicelib.oauth import accounts
from chalicelib.oauth.throttle import Throttled, source_of, subject_of, throttle_key
from tests.authorize_support import EMAIL, PASSWORD, Browser, sign_in
from tests.race_support import all_at_once
from tests.token_helpers import (
    FORM,
    V,
    assert_error,
    basic,
    exchange,
    freeze_clock,
    make_world,
    post_token,
    tokens_of,
)
from tests.worlds import reconfigured

pytestmark = pytest.mark.store("memory")

CC = {"grant_type": "client_credentials"}


@pytest.fixture
def frozen(monkeypatch):
    freeze_clock(monkeypatch)  # counters are wall-clock windows: never straddle two


@pytest.fixture
def source(monkeypatch):
    """Set the address API Gateway reports (`requestContext.identity.sourceIp`) for the next requests."""

    def use(address: str) -> None:
        monkeypatch.setattr(LambdaEventConverter, "LOCAL_SOURCE_IP", address)

    return use


def limits(aws, **changes: int) -> None:
    aws.settings = dataclasses.replace(aws.settings, **changes)  # what the helpers below read
    reconfigured(aws)  # what the services read: wiring gives them their settings when it builds them


def user(aws, email: str = EMAIL):
    return accounts.create_user(aws.store, email, PASSWORD, clock.now())


def attempt(aws, email: str, password: str, address: str, device_user_id: str | None = None):
    return accounts.authenticate(aws.store, aws.throttle, accounts.LoginLimits.from_settings(aws.settings),
                                 accounts.LoginAttempt(email, password, address, device_user_id))


# -- login: reserve before verify ------------------------------------------------------------------

def test_parallel_guesses_never_check_more_passwords_than_the_limit(aws, frozen, monkeypatch):
    """20 parallel guesses for one account, the right password among them: at most the limit of wrong
    ones are checked (check-then-act checked all 20, and the right one signed in)."""
    limits(aws, login_max_failures=5)
    checked: list[str] = []
    real_verify = accounts.verify_password

    def counting_verify(password, stored):
        checked.append(password)
        return real_verify(password, stored)

    monkeypatch.setattr(accounts, "verify_password", counting_verify)
    for round_number in range(4):  # repeated, each round with a fresh account, to catch the window
        email = f"race{round_number}@example.com"
        user(aws, email)
        checked.clear()
        passwords = [f"wrong-{i}" for i in range(19)] + [PASSWORD]
        outcomes = all_at_once(*[functools.partial(attempt, aws, email, p, "203.0.113.9") for p in reversed(passwords)])
        assert [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, Throttled)] == []
        wrong_checked = [p for p in checked if p != PASSWORD]
        assert len(wrong_checked) <= 5, (round_number, len(checked))  # a right one gives its unit back
        assert sum(isinstance(o, Throttled) for o in outcomes) >= 14


# -- login: who gets refused ---------------------------------------------------------------------------

def test_one_source_spraying_many_accounts_is_stopped(aws, frozen):
    limits(aws, login_source_max_failures=10)
    victims = [f"spray{i}@example.com" for i in range(12)]
    for email in victims:
        user(aws, email)
    for email in victims[:10]:
        assert attempt(aws, email, "Winter2025!", "198.51.100.7") is None
    with pytest.raises(Throttled) as refused:
        attempt(aws, victims[10], PASSWORD, "198.51.100.7")  # even the right password: not checked
    assert refused.value.scope == "login-source"
    assert attempt(aws, victims[11], PASSWORD, "198.51.100.8") is not None  # another source is unaffected


def test_an_attacker_knowing_only_the_email_cannot_lock_the_user_out(aws, frozen, http, source):
    """Guesses from many addresses exhaust the per-account limit: new devices are slowed for the
    window, but the user's own browser (signed in before) still gets in, and the attacker's source
    is locked by backoff."""
    limits(aws, login_max_failures=3, login_account_max_failures=6)
    victim = user(aws)
    source("192.0.2.10")
    browser = Browser(http)
    assert "clipron_session=" in str(sign_in(browser).headers["Set-Cookie"])
    assert browser.cookies.get("clipron_device")  # the browser is now a known device of this account
    for attacker in ("203.0.113.1", "203.0.113.2"):
        for _ in range(3):
            assert attempt(aws, EMAIL, "guess", attacker) is None
        with pytest.raises(Throttled):
            attempt(aws, EMAIL, "guess", attacker)
    with pytest.raises(Throttled) as slowed:
        attempt(aws, EMAIL, PASSWORD, "192.0.2.99")  # a new device during the attack: waits, is not locked
    assert slowed.value.scope == "login-account" and slowed.value.retry_after <= aws.settings.login_window_seconds
    signed_in = sign_in(browser)  # the known device from its usual address
    assert signed_in.status_code == 200 and "clipron_session=" in str(signed_in.headers["Set-Cookie"])
    source("192.0.2.77")  # the known device from another address (a phone on mobile data)
    assert sign_in(browser).status_code == 200
    assert attempt(aws, EMAIL, PASSWORD, "192.0.2.10", victim.user_id) is not None


def test_a_known_device_cookie_of_another_account_is_no_exemption(aws, frozen):
    limits(aws, login_account_max_failures=2)
    victim, other = user(aws), user(aws, "other@example.com")
    for address in ("203.0.113.1", "203.0.113.2"):
        assert attempt(aws, EMAIL, "guess", address) is None
    with pytest.raises(Throttled):
        attempt(aws, EMAIL, PASSWORD, "203.0.113.3", device_user_id=other.user_id)
    assert attempt(aws, EMAIL, PASSWORD, "203.0.113.3", device_user_id=victim.user_id) is not None


def test_backoff_doubles_for_a_source_that_keeps_guessing(aws, frozen):
    limits(aws, login_max_failures=3)
    user(aws)
    window = aws.settings.login_window_seconds
    waits = []
    for _ in range(3):
        for _ in range(3):
            assert attempt(aws, EMAIL, "guess", "203.0.113.5") is None
        with pytest.raises(Throttled) as refused:
            attempt(aws, EMAIL, PASSWORD, "203.0.113.5")
        waits.append(refused.value.retry_after)
        with pytest.raises(Throttled):  # blocked: nothing is checked until the block ends
            attempt(aws, EMAIL, PASSWORD, "203.0.113.5")
        clock.travel(refused.value.retry_after)
    assert waits == [window, 2 * window, 4 * window]
    assert attempt(aws, EMAIL, PASSWORD, "203.0.113.5") is not None
    assert attempt(aws, EMAIL, PASSWORD, "203.0.113.6") is not None  # another source never was blocked


def test_successful_sign_ins_give_their_reservation_back(aws, frozen):
    limits(aws, login_max_failures=2, login_source_max_failures=2)
    user(aws)
    for _ in range(10):
        assert attempt(aws, EMAIL, PASSWORD, "192.0.2.1") is not None


def test_the_global_ceiling_stops_a_distributed_attack_but_not_known_devices(aws, frozen):
    limits(aws, login_global_max_failures_per_minute=5)
    victim = user(aws)
    for i in range(5):
        assert attempt(aws, f"nobody{i}@example.com", "guess", f"203.0.113.{i}") is None
    with pytest.raises(Throttled) as refused:
        attempt(aws, EMAIL, PASSWORD, "203.0.113.200")
    assert refused.value.scope == "login-global" and refused.value.retry_after <= 60
    assert attempt(aws, EMAIL, PASSWORD, "203.0.113.200", victim.user_id) is not None


def test_the_login_page_answers_429_with_retry_after(aws, frozen, http, source):
    limits(aws, login_max_failures=2)
    user(aws)
    source("203.0.113.50")
    browser = Browser(http)
    for _ in range(2):
        assert sign_in(browser, password="bad-guess").status_code == 400
    throttled = sign_in(browser)
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) == aws.settings.login_window_seconds
    source("203.0.113.51")
    assert sign_in(Browser(http)).status_code == 200


def test_x_forwarded_for_does_not_move_the_source(aws, frozen, http, source):
    limits(aws, login_max_failures=2)
    user(aws)
    source("203.0.113.60")
    browser = Browser(http)
    for i in range(3):
        browser_headers = {"X-Forwarded-For": f"10.0.0.{i}"}
        form_page = browser.get("/login")
        token = form_page.body.decode().split('name="csrf_token" value="')[1].split('"')[0]
        last = browser.post("/login", {"csrf_token": token, "email": EMAIL, "password": "bad"}, headers=browser_headers)
    assert last.status_code == 429


# -- client authentication -----------------------------------------------------------------------------

def _fail_client_authentication(http, times: int, credentials: Callable[[int], dict[str, str]]) -> None:
    """`times` client_credentials requests with the i-th wrong credentials, each answered 401 invalid_client."""
    for i in range(times):
        assert_error(post_token(http, CC, credentials(i)), 401, "invalid_client")


def test_a_tripped_client_throttle_refuses_even_the_right_secret(aws, frozen, http, source):
    world = make_world(aws)
    limits(aws, client_auth_max_failures=3)
    cc1 = world.clients["CC1"]
    source("198.51.100.20")
    _fail_client_authentication(http, 3, lambda i: basic(cc1.client_id, f"guess-{i}"))
    refused = assert_error(post_token(http, CC, basic(cc1.client_id, cc1.secret)), 429, "invalid_client")
    assert refused == {"error": "invalid_client",
                       "error_description": "too many failed client authentications; retry later"}
    source("198.51.100.21")  # the client's own servers: guessing elsewhere does not lock it out
    tokens_of(post_token(http, CC, basic(cc1.client_id, cc1.secret)))


def _requests(http, client, code: str, refresh_token: str, access_token: str):
    """Each authenticated request kind a tripped limit must refuse, as (name, send(secret))."""
    def send(path: str, params: dict[str, str]):
        return lambda secret: http.post(path, headers={**FORM, **basic(client.client_id, secret)},
                                        body=urlencode(params))

    return [
        ("code exchange", send("/token", {"grant_type": "authorization_code", "code": code, "code_verifier": V,
                                          "redirect_uri": client.redirect_uris[0]})),
        ("refresh", send("/token", {"grant_type": "refresh_token", "refresh_token": refresh_token})),
        ("bad code", send("/token", {"grant_type": "authorization_code", "code": "no-such-code", "code_verifier": V})),
        ("missing parameter", send("/token", {"grant_type": "refresh_token"})),
        ("introspection", send("/introspect", {"token": access_token})),
        ("revocation", send("/revoke", {"token": refresh_token})),
    ]


def test_a_tripped_limit_refuses_the_right_secret_everywhere_alike_and_consumes_nothing(aws, frozen, http, source):
    """While client+source is at its limit, every request with the RIGHT secret (code exchange, refresh,
    introspection, revocation, and errors the secret would reach) gets the very answer a WRONG secret
    gets: 429, nothing consumed or revoked; once the window passes, the same code and token work."""
    world = make_world(aws)
    limits(aws, client_auth_max_failures=3)
    c1 = world.clients["C1"]
    source("198.51.100.25")
    first = tokens_of(exchange(http, c1, world.issue_code(c1)))
    code = world.issue_code(c1, lifetime=600)
    _fail_client_authentication(http, 3, lambda i: basic(c1.client_id, f"guess-{i}"))
    for name, send in _requests(http, c1, code, first["refresh_token"], first["access_token"]):
        right, wrong = send(c1.secret), send("wrong-secret")
        assert_error(right, 429, "invalid_client")
        assert int(right.headers["Retry-After"]) > 0
        assert (right.body, right.headers["Retry-After"]) == (wrong.body, wrong.headers["Retry-After"]), name
    assert world.store.get_code(digest(code)).used_at is None  # nothing consumed
    assert world.store.get_refresh_token(digest(first["refresh_token"])).used_at is None
    grant_id = aws.access_tokens.verify(first["access_token"], aws.settings.api_audience).grant_id
    assert aws.store.get_grant(c1.client_id, grant_id).revoked_at is None
    clock.travel(60)  # the window passes: the same code and refresh token work
    tokens_of(exchange(http, c1, code))
    tokens_of(post_token(http, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                         basic(c1.client_id, c1.secret)))


def test_a_tripped_source_limit_refuses_client_credentials_with_the_right_secret(aws, frozen, http, source):
    world = make_world(aws)
    limits(aws, client_auth_source_max_failures=2)
    cc1 = world.clients["CC1"]
    source("198.51.100.26")
    _fail_client_authentication(http, 2, lambda i: basic(f"sprayed-{i}", "x"))
    right = post_token(http, CC, basic(cc1.client_id, cc1.secret))
    wrong = post_token(http, CC, basic(cc1.client_id, "x"))
    assert right.status_code == 429 and (right.body, right.headers) == (wrong.body, wrong.headers)
    clock.travel(60)
    tokens_of(post_token(http, CC, basic(cc1.client_id, cc1.secret)))


def test_unknown_client_ids_are_throttled_the_same_way(aws, frozen, http, source):
    world = make_world(aws)
    limits(aws, client_auth_max_failures=3)
    source("198.51.100.30")
    answers = {}
    for client_id in ("no-such-client", world.clients["CC1"].client_id):
        statuses = [post_token(http, CC, basic(client_id, f"guess-{i}")).status_code for i in range(4)]
        last = post_token(http, CC, basic(client_id, "guess-last"))
        answers[client_id] = (statuses, last.status_code, last.body, last.headers["Retry-After"])
    unknown, known = answers.values()
    assert unknown == known
    assert unknown[0] == [401, 401, 401, 429] and unknown[1] == 429


def test_one_source_spraying_client_ids_is_stopped(aws, frozen, http, source):
    world = make_world(aws)
    limits(aws, client_auth_source_max_failures=5)
    source("198.51.100.40")
    for i in range(5):
        assert_error(post_token(http, CC, basic(f"client-{i}", "x")), 401, "invalid_client")
    cc1 = world.clients["CC1"]
    assert_error(post_token(http, CC, basic(cc1.client_id, cc1.secret)), 429, "invalid_client")


# -- the primitive -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "expected"), [
    ("203.0.113.9", "203.0.113.9"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.1", "198.51.100.1"),
    ("", "unknown"), (None, "unknown"), ("1.2.3.4, 5.6.7.8", "unknown"), ("<script>", "unknown"),
])
def test_sources_are_addresses_or_ipv6_networks(address, expected):
    assert source_of(address) == expected


@pytest.mark.store("dynamo")  # counts/reads real DynamoDB items
def test_throttle_keys_hold_no_email_or_address_in_the_clear(aws, frozen):
    import boto3

    user(aws)
    attempt(aws, EMAIL, "guess", "203.0.113.70")
    items = boto3.resource("dynamodb").Table(aws.settings.table_name).scan()["Items"]
    keys = " ".join(item["pk"] for item in items if item["pk"].startswith("rate#"))
    assert "login-account-source:" + subject_of(EMAIL, "203.0.113.70") in keys
    assert EMAIL not in keys and "203.0.113.70" not in keys
    cleared = aws.store.clear_throttle(throttle_key("login-account", subject_of(EMAIL)))
    assert cleared == 1


# -- quotas ----------------------------------------------------------------------------------------------

@pytest.mark.store("dynamo")  # counts/reads real DynamoDB items
def test_writes_per_user_on_the_api_are_limited(clients, frozen, http):
    import json

    from tests.lifecycle_helpers import mint

    limits(clients, api_writes_per_user_per_minute=2)
    token = mint(clients, "c1", user_id="writer", scope="write:project").access_token
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    answers = [http.post("/v1/projects", headers=headers, body=json.dumps({"name": f"p{i}"}).encode())
               for i in range(3)]
    assert [answer.status_code for answer in answers] == [201, 201, 429]
    assert json.loads(answers[2].body)["error"] == "temporarily_unavailable" and answers[2].headers["Retry-After"]
    other = mint(clients, "c1", user_id="another", scope="write:project").access_token
    assert http.post("/v1/projects", headers={**headers, "Authorization": f"Bearer {other}"},
                     body=b'{"name": "x"}').status_code == 201


def test_registrations_per_initial_access_token_are_limited(aws, frozen, http):
    import json

    from chalicelib.crypto.secrets import digest
    from chalicelib.records import RegistrationTokenRecord

    limits(aws, registrations_per_token_per_day=2)
    now = clock.now()
    aws.store.put_registration_token(RegistrationTokenRecord(digest("quota-token"), now, now + 86400, "tests"))
    metadata = json.dumps({"client_name": "Q", "redirect_uris": ["https://q.example/cb"]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer quota-token"}
    answers = [http.post("/register", headers=headers, body=metadata) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [201, 201, 429]
    assert json.loads(answers[2].body)["error"] == "temporarily_unavailable" and answers[2].headers["Retry-After"]


def test_parked_authorization_requests_per_source_are_limited(aws, frozen, http, source):
    from urllib.parse import urlencode

    from tests.token_helpers import CH

    world = make_world(aws)
    limits(aws, parked_requests_per_source=2)
    c1 = world.clients["C1"]
    path = "/authorize?" + urlencode({"response_type": "code", "client_id": c1.client_id,
                                      "redirect_uri": c1.redirect_uris[0], "scope": "read:analysis",
                                      "code_challenge": CH, "code_challenge_method": "S256", "state": "s1"})
    source("203.0.113.80")
    answers = [http.get(path) for _ in range(3)]
    assert [answer.status_code for answer in answers[:2]] == [302, 302]
    assert "/login?" in answers[0].headers["Location"]
    # RFC 6749 §4.1.2.1 temporarily_unavailable for the client; an unverified client's redirect is offered on
    # our page, never followed by itself (RFC 9700 §4.11.2)
    assert answers[2].status_code == 400 and "Location" not in answers[2].headers
    assert "error=temporarily_unavailable" in answers[2].body.decode() and "state=s1" in answers[2].body.decode()
    source("203.0.113.81")
    assert http.get(path).status_code == 302


def test_the_parked_request_quota_is_the_flows_own_rule_per_source(aws, frozen):
    """The authorization flow takes the caller's address as a parameter and applies the quota itself
    (built once by wiring; no route configures it): a third parked request from one source goes back to
    the client as temporarily_unavailable, another source still parks."""
    from tests.token_helpers import CH

    world = make_world(aws)
    limits(aws, parked_requests_per_source=2)
    flow = wiring.services().authorization_flow
    c1 = world.clients["C1"]
    pairs = [("response_type", "code"), ("client_id", c1.client_id), ("redirect_uri", c1.redirect_uris[0]),
             ("code_challenge", CH), ("code_challenge_method", "S256"), ("state", "s2")]
    steps = [flow.start(pairs, None, "203.0.113.90") for _ in range(3)]
    assert [step.kind for step in steps[:2]] == ["login", "login"]
    assert steps[2].kind == "confirm" and steps[2].error.error == "temporarily_unavailable"
    assert "error=temporarily_unavailable" in steps[2].location and "state=s2" in steps[2].location
    assert flow.start(pairs, None, "203.0.113.91").kind == "login"


def _created_or_refused(outcome: object, refusal: type[Exception]) -> object:
    if isinstance(outcome, refusal):
        return "refused"
    return outcome if isinstance(outcome, Exception) else "created"


@pytest.mark.store("dynamo")  # a race on DynamoDB's conditional writes
def test_parallel_app_creations_never_exceed_the_quota(aws):
    """Check-then-act (count the apps, then create) let 8 parallel creations through past a quota of 3;
    the counter's condition inside the creating transaction lets exactly 3 through, every round."""
    from chalicelib.oauth.developer import AppForm
    from chalicelib.oauth.errors import InvalidRequest
    from tests.developer_support import plain_user

    limits(aws, max_apps_per_user=3)
    developer = wiring.services().developer
    form = AppForm("Racer", "web", ["https://race.example/cb"], ["read:analysis"])
    for round_number in range(6):  # repeated, each round with a fresh owner, to catch the window
        owner = plain_user(aws, f"racer{round_number}@example.com")
        outcomes = [_created_or_refused(o, InvalidRequest)
                    for o in all_at_once(*[functools.partial(developer.create, owner, form)] * 8)]
        assert sorted(outcomes) == ["created"] * 3 + ["refused"] * 5, (round_number, outcomes)
        assert len(aws.store.list_owned_apps(owner)) == 3


def test_apps_per_user_in_developer_settings_are_limited(aws, http):
    from tests.developer_support import sign_in as developer

    limits(aws, max_apps_per_user=2)
    dev = developer(aws, http)
    statuses = [dev.create_app(name=f"App {i}").status_code for i in range(3)]
    assert statuses[2] == 400 and statuses[:2] != [400, 400], statuses
    assert len(aws.store.list_owned_apps(dev.user_id)) == 2
