"""Retries that can't turn success into failure (issue 11): a conditional write whose answer was lost
is retried by botocore and must not fail its own condition — the retry of our own write is success."""

from __future__ import annotations

import pytest
from botocore.retries.standard import ExponentialBackoff

from chalicelib.crypto.secrets import digest
from chalicelib.oauth.errors import InvalidRequest
from tests.authorize_support import EMAIL, PASSWORD, Browser, sign_in
from tests.token_helpers import (
    CH,
    exchange,
    lost_answer,
    refresh,
    tokens_of,
)
from tests.worlds import reconfigured


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)  # no real sleeping


def authorize_path(client) -> str:
    from urllib.parse import urlencode

    return "/authorize?" + urlencode({
        "response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0],
        "scope": "read:analysis", "state": "S1", "code_challenge": CH, "code_challenge_method": "S256"})


def test_a_code_exchange_whose_answer_was_lost_still_issues_the_tokens(http, world, aws):
    """Today: the retry found the code used, answered "already used" and revoked the grant."""
    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    with lost_answer(aws, "TransactWriteItems") as lost:
        tokens = tokens_of(exchange(http, c1, code))
    assert len(lost) == 1
    claims = aws.access_tokens.verify(tokens["access_token"], aws.settings.api_audience)
    assert world.store.get_grant(c1.client_id, claims.grant_id).revoked_at is None
    tokens_of(refresh(http, c1, tokens["refresh_token"]))  # the family is alive
    assert exchange(http, c1, code).status_code == 400  # and the code is still single use


def test_a_code_exchange_without_refresh_token_whose_answer_was_lost_still_succeeds(http, world, aws):
    nort = world.clients["NORT"]
    code = world.issue_code(nort)
    with lost_answer(aws, "TransactWriteItems"):
        tokens = tokens_of(exchange(http, nort, code))
    claims = aws.access_tokens.verify(tokens["access_token"], aws.settings.api_audience)
    assert world.store.get_grant(nort.client_id, claims.grant_id).revoked_at is None


def test_a_refresh_whose_answer_was_lost_succeeds_even_with_strict_rotation(http, world, aws):
    """With REFRESH_GRACE_SECONDS=0 nothing papers over it: the retry itself must be recognised."""
    reconfigured(aws, refresh_grace_seconds=0)
    c1 = world.clients["C1"]
    first = tokens_of(exchange(http, c1, world.issue_code(c1)))
    with lost_answer(aws, "TransactWriteItems"):
        second = tokens_of(refresh(http, c1, first["refresh_token"]))
    third = tokens_of(refresh(http, c1, second["refresh_token"]))  # the successor is live: no reuse was seen
    assert third["refresh_token"] != second["refresh_token"]


def test_transactions_carry_one_client_request_token_across_botocore_retries(http, world, aws):
    c1 = world.clients["C1"]
    with lost_answer(aws, "TransactWriteItems", times=2) as tokens:
        tokens_of(exchange(http, c1, world.issue_code(c1)))
    assert len(tokens) == 2 and tokens[0] and tokens[0] == tokens[1]  # DynamoDB dedups on it for 10 minutes


def test_a_login_whose_session_write_was_lost_signs_in(http, aws):
    """Today: the retried PutItem found its own session id taken and the login answered 500."""
    from chalicelib import clock
    from chalicelib.oauth import accounts

    accounts.create_user(aws.store, EMAIL, PASSWORD, clock.now())
    browser = Browser(http)
    with lost_answer(aws, "PutItem") as lost:
        response = sign_in(browser)
    assert lost and response.status_code == 200, response.body[:300]
    assert aws.sessions.resolve(browser.cookies["clipron_session"]) is not None


@pytest.mark.parametrize("signed_in", [False, True], ids=["parking-the-request", "storing-the-code"])
def test_authorize_whose_write_was_lost_carries_on(http, world, aws, signed_in):
    """Today: the retried PutItem of the parked request or the code answered 500 (AlreadyExists)."""
    c1 = world.clients["C1"]
    world.issue_code(c1)  # a remembered consent: a signed-in user gets a code at once
    headers = {}
    if signed_in:
        session_id, _ = aws.sessions.start(world.user_id)
        headers = {"Cookie": f"clipron_session={session_id}"}
    with lost_answer(aws, "PutItem") as lost:
        response = http.get(authorize_path(c1), headers=headers)
    assert lost and response.status_code == 302, response.body[:300]
    location = response.headers["Location"]
    if signed_in:
        from urllib.parse import parse_qsl, urlsplit

        code = dict(parse_qsl(urlsplit(location).query))["code"]
        assert world.store.get_code(digest(code)) is not None
        tokens_of(exchange(http, c1, code))
    else:
        assert "/login?request=" in location


def test_creating_users_and_apps_whose_answer_was_lost_succeeds(aws):
    from chalicelib import clock
    from chalicelib.oauth import accounts
    from tests.token_helpers import World

    with lost_answer(aws, "TransactWriteItems"):
        user = accounts.create_user(aws.store, "lost@example.com", PASSWORD, clock.now())
    assert aws.store.find_user_id("lost@example.com") == user.user_id
    world = World(aws, user.user_id)
    with lost_answer(aws, "TransactWriteItems"):
        client = world.add_client("Lost", ["https://lost.example/cb"])
    assert aws.store.get_client(client.client_id) is not None
    with pytest.raises(InvalidRequest):  # a real duplicate is still refused
        accounts.create_user(aws.store, "lost@example.com", PASSWORD, clock.now())


def test_a_rotated_secret_whose_answer_was_lost_is_rotated_once(aws, world):
    from chalicelib.records import ClientSecret

    c1 = world.clients["C1"]
    calls = []

    def rotate(client):
        calls.append(1)
        client.secrets = [*client.secrets, ClientSecret(digest(f"new-{len(calls)}"))]

    with lost_answer(aws, "PutItem"):
        updated = aws.store.update_client(c1.client_id, rotate)
    assert len(calls) == 1 and len(updated.secrets) == 2
    assert len(aws.store.get_client(c1.client_id).secrets) == 2



# -- a 503 whose rotation had committed -------------------------------------------------------------

def test_a_refresh_503_that_had_committed_is_answered_by_the_retry_after_the_grace(http, world, aws, monkeypatch):
    """The rotation commits, every answer is lost, the client gets 503 — long after the commit — and
    retries past REFRESH_GRACE_SECONDS: the committed response comes back; the family is not revoked
    (today: the retry counted as reuse and revoked the grant, while the README promised the token stays
    usable)."""
    from chalicelib import clock
    from tests.token_helpers import freeze_clock

    freeze_clock(monkeypatch)
    c1 = world.clients["C1"]
    first = tokens_of(exchange(http, c1, world.issue_code(c1)))
    with lost_answer(aws, "TransactWriteItems", times=1 + aws.settings.ddb_max_retries):
        failed = refresh(http, c1, first["refresh_token"])
    assert failed.status_code == 503, failed.body
    spent = world.store.get_refresh_token(digest(first["refresh_token"]))
    assert spent.used_at is not None  # it had committed
    clock.travel(aws.settings.refresh_replay_seconds - 1)
    retried = tokens_of(refresh(http, c1, first["refresh_token"]))
    assert digest(retried["refresh_token"]) == spent.successor_digest  # the committed response
    tokens_of(refresh(http, c1, retried["refresh_token"]))  # the family lives on


# -- the request-wide deadline -------------------------------------------------------------------------

API_GATEWAY_LIMIT_SECONDS = 29


@pytest.fixture
def slow_dynamodb(aws, monkeypatch):
    """Every DynamoDB call succeeds but takes 3.9 s (within its own 4 s read timeout) on a fake clock."""
    from chalicelib import deadline
    from chalicelib.store.dynamo import shared_connection

    elapsed = [0.0]
    monkeypatch.setattr(deadline, "monotonic", lambda: elapsed[0])

    def slow(**_):
        elapsed[0] += 3.9

    events = shared_connection().client.meta.events
    events.register("after-call.dynamodb", slow)
    yield elapsed
    events.unregister("after-call.dynamodb", slow)


def test_slow_calls_that_each_succeed_end_in_a_503_page_before_the_gateway_gives_up(http, aws, slow_dynamodb):
    from chalicelib import clock
    from chalicelib.oauth import accounts

    accounts.create_user(aws.store, EMAIL, PASSWORD, clock.now())
    browser = Browser(http)
    form_page = browser.get("/login")
    slow_dynamodb[0] = 0.0
    from tests.authorize_support import hidden

    response = browser.post("/login", {"csrf_token": hidden(form_page, "csrf_token"), "email": EMAIL,
                                       "password": PASSWORD})
    assert response.status_code == 503, response.body[:300]
    assert "briefly unavailable" in response.body.decode()
    assert slow_dynamodb[0] <= aws.settings.longest_request_seconds < API_GATEWAY_LIMIT_SECONDS


def test_slow_calls_end_a_token_request_in_a_spec_shaped_503_with_nothing_issued(http, world, aws, slow_dynamodb):
    from tests.token_helpers import assert_error
    from tests.worlds import reconfigured

    c1 = world.clients["C1"]
    code = world.issue_code(c1)
    # a code exchange makes 3 calls with a cold client cache (client, code + throttle counters, the
    # transaction): at 3.9 s each the transaction is due after 7.8 s, past a 7 s deadline
    reconfigured(aws, request_deadline_seconds=7)
    slow_dynamodb[0] = 0.0
    response = exchange(http, c1, code)
    assert_error(response, 503, "temporarily_unavailable")
    assert response.headers["Retry-After"]
    assert slow_dynamodb[0] < API_GATEWAY_LIMIT_SECONDS
    assert world.store.get_code(digest(code)).used_at is None  # the transaction was never sent


def test_settings_refuse_a_deadline_that_leaves_no_room_for_the_last_call():
    from chalicelib.settings import ConfigError, load_settings

    with pytest.raises(ConfigError, match="REQUEST_DEADLINE_SECONDS"):
        load_settings({"AWS_REGION": "us-east-1", "REQUEST_DEADLINE_SECONDS": "20"})
    assert load_settings({"AWS_REGION": "us-east-1"}).longest_request_seconds <= 24


def test_a_consent_whose_consume_answer_was_lost_still_issues_the_code(world, aws):
    """Today: the retried conditional delete of the parked request found it gone and the user, who had
    consumed it themselves, saw "request expired". The request is still single use afterwards."""
    from chalicelib.oauth.authorize import ParkedRequestGone

    c1 = world.clients["C1"]
    pairs = [("response_type", "code"), ("client_id", c1.client_id), ("redirect_uri", c1.redirect_uris[0]),
             ("scope", "read:analysis"), ("code_challenge", CH), ("code_challenge_method", "S256")]
    flow = aws.authorization_flow
    parked = flow.start(pairs, None, "203.0.113.7")
    _, session = aws.sessions.start(world.user_id)
    # whichever write consumes the request (the old delete, or an update) loses its answer once
    with lost_answer(aws, "DeleteItem") as deleted, lost_answer(aws, "UpdateItem") as updated:
        step = flow.decide(parked.request_id, session, allow=True)
    assert deleted or updated
    assert step.kind == "redirect" and "code=" in step.location
    with pytest.raises(ParkedRequestGone):
        flow.decide(parked.request_id, session, allow=True)


def test_rebuilding_the_services_adds_no_second_deadline_hook(aws):
    """The DynamoDB connection outlives a rebuilt wiring (tests, `reconfigured`, the CLI): the deadline hook
    is registered once per client, not once per build (700 copies made every call of a late test slow)."""
    from chalicelib import deadline, wiring
    from chalicelib.store.dynamo import shared_connection

    def hooks() -> int:
        return sum(handler is deadline.check for handler in
                   shared_connection().client.meta.events._emitter._handlers.prefix_search("before-send.dynamodb"))

    assert hooks() == 1
    for _ in range(3):
        reconfigured(aws, request_deadline_seconds=aws.settings.request_deadline_seconds)
        wiring.services().kms()
    assert hooks() == 1
