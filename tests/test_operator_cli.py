"""The operator's tools (python -m chalicelib.cli …): users, clients and registration tokens.

Every withdrawal takes effect at once everywhere: sign-in, the pages, refresh, introspection and the
exchange of a code issued before it (the exchange conditions on what the command wrote).
"""

from __future__ import annotations

import io
import json

import pytest

from chalicelib import cli, clock
from chalicelib.crypto.secrets import digest
from chalicelib.oauth import accounts
from chalicelib.records import RegistrationTokenRecord
from tests import authorize_support as front
from tests.developer_support import sign_in
from tests.lifecycle_helpers import basic, introspect, mint, post_form
from tests.token_helpers import CH, exchange, make_world, refresh


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys, *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return out


def active(http, token: str) -> bool:
    response = introspect(http, token)
    assert response.status_code == 200, response.body
    return json.loads(response.body)["active"]


def refreshes(http, refresh_token: str, client_id: str = "c1") -> bool:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return post_form(http, "/token", form, basic(client_id)).status_code == 200


def test_disable_user_refuses_sign_in_pages_refresh_and_introspection_until_enabled(clients, http, capsys):
    browser = front.Browser(http)
    user = accounts.create_user(clients.store, front.EMAIL, front.PASSWORD, clock.now())
    assert front.sign_in(browser).status_code == 200
    minted = mint(clients, "c1", user_id=user.user_id)

    assert "disabled" in ok(capsys, "disable-user", "--user", front.EMAIL)
    assert front.sign_in(front.Browser(http)).status_code == 400  # the right password, refused
    account_page = browser.get("/account/apps")
    assert account_page.status_code in (302, 303) and "/login" in account_page.headers["Location"]
    assert not refreshes(http, minted.refresh_token)
    assert not active(http, minted.access_token)

    ok(capsys, "enable-user", "--user", user.user_id)
    assert active(http, minted.access_token)  # nothing was revoked
    assert front.sign_in(front.Browser(http)).status_code == 200


def test_revoke_user_grants_ends_tokens_sessions_and_codes_not_yet_exchanged(aws, http, capsys):
    world = make_world(aws)
    c1 = world.clients["C1"]
    pending = world.issue_code(c1, challenge=CH)
    tokens = json.loads(exchange(http, c1, world.issue_code(c1, challenge=CH)).body)
    session_id, _ = aws.sessions.start(world.user_id)

    assert "grants and sessions ended" in ok(capsys, "revoke-user-grants", "--user", world.user_id)
    assert exchange(http, c1, pending).status_code == 400
    assert refresh(http, c1, tokens["refresh_token"]).status_code == 400
    assert aws.sessions.resolve(session_id) is None
    generation = aws.store.get_user(world.user_id).generation
    assert aws.sessions.resolve(aws.sessions.start(world.user_id, generation)[0]) is not None  # signing in again


def test_revoke_client_grants_ends_every_users_tokens_and_pending_codes(clients, http, capsys):
    first, second = mint(clients, "c1", user_id="user-1"), mint(clients, "c1", user_id="user-2")
    other = mint(clients, "c2")
    assert "grants ended" in ok(capsys, "revoke-client-grants", "--client-id", "c1")
    for minted in (first, second):
        assert not active(http, minted.access_token) and not refreshes(http, minted.refresh_token)
    assert active(http, other.access_token) and refreshes(http, other.refresh_token, "c2")


def test_a_code_issued_before_revoke_client_grants_cannot_be_exchanged(aws, http, capsys):
    world = make_world(aws)
    c1 = world.clients["C1"]
    code = world.issue_code(c1, challenge=CH)
    ok(capsys, "revoke-client-grants", "--client-id", c1.client_id)
    aws.clients.forget(c1.client_id)  # the request would reach an instance that read the client since
    response = exchange(http, c1, code)
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_grant"


def test_disable_client_refuses_it_everywhere_and_enable_restores(clients, http, capsys):
    minted = mint(clients, "c1")
    assert "DISABLED" in ok(capsys, "disable-client", "--client-id", "c1")
    clients.clients.forget("c1")
    assert not active(http, minted.access_token)
    assert post_form(http, "/token", {"grant_type": "client_credentials"}, basic("c1")).status_code == 401
    assert introspect(http, minted.access_token, client_id="c1").status_code == 401
    ok(capsys, "enable-client", "--client-id", "c1")
    clients.clients.forget("c1")
    assert active(http, minted.access_token) and refreshes(http, minted.refresh_token)


def test_delete_client_and_delete_user(clients, http, capsys):
    minted = mint(clients, "c2", user_id="user-9")
    assert "deleted" in ok(capsys, "delete-client", "--client-id", "c2")
    assert clients.store.get_client("c2") is None and not active(http, minted.access_token)
    other = mint(clients, "c1", user_id="user-8")
    assert "deleted user user-8" in ok(capsys, "delete-user", "--user", "user-8")
    assert clients.store.get_user("user-8") is None and clients.store.find_user_id("user-8@example.com") is None
    assert not active(http, other.access_token) and not refreshes(http, other.refresh_token)


def test_reset_password_changes_it_and_ends_sessions_and_grants(clients, http, capsys, monkeypatch):
    browser = sign_in(clients, http, "ada@example.com")
    minted = mint(clients, "c1", user_id=browser.user_id)
    monkeypatch.setattr("sys.stdin", io.StringIO("a brand new password\n"))
    ok(capsys, "reset-password", "--user", "ada@example.com", "--password-stdin")
    assert browser.get("/account/apps").status_code in (302, 303)
    assert not refreshes(http, minted.refresh_token)
    assert front.sign_in(front.Browser(http), "ada@example.com", "a good password").status_code == 400
    assert front.sign_in(front.Browser(http), "ada@example.com", "a brand new password").status_code == 200


def test_lists_and_shows(clients, capsys):
    mint(clients, "c1", user_id="user-1")
    assert "user-1  user-1@example.com" in ok(capsys, "list-users")
    shown = json.loads(ok(capsys, "show-user", "--user", "user-1@example.com"))
    assert shown["user_id"] == "user-1" and "c1" in shown["authorised_apps"]
    listing = ok(capsys, "list-clients")
    assert all(client_id in listing for client_id in ("c1", "c2", "p1", "rs1")) and "resource-server" in listing
    assert json.loads(ok(capsys, "show-client", "--client-id", "rs1"))["resource_server"] is True


def test_registration_tokens_are_listed_by_digest_and_revoked(aws, http, capsys):
    aws.store.put_registration_token(RegistrationTokenRecord(digest("iat-one"), clock.now(), clock.now() + 600,
                                                             "for the partner team"))
    listing = ok(capsys, "list-registration-tokens")
    assert digest("iat-one")[:16] in listing and "for the partner team" in listing and "iat-one" not in listing
    ok(capsys, "revoke-registration-token", "--digest", digest("iat-one")[:10])
    response = http.post("/register", headers={"Content-Type": "application/json", "Authorization": "Bearer iat-one"},
                         body=json.dumps({"client_name": "X", "redirect_uris": ["https://x.example/cb"]}))
    assert response.status_code == 401


@pytest.mark.parametrize("argv, message", [
    (["show-user", "--user", "nobody@example.com"], "no such user"),
    (["disable-client", "--client-id", "nope"], "no such client"),
    (["revoke-registration-token", "--digest", "abc"], "exactly one registration token"),
    (["reset-password", "--user", "user-1", "--password", "short"], "8 to 256 characters"),
])
def test_mistakes_are_one_clear_line(clients, capsys, argv, message):
    mint(clients, "c1", user_id="user-1")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_clear_throttle_lifts_an_accounts_counters_and_backoff_block(aws, capsys):
    from chalicelib.oauth.throttle import source_of, subject_of, throttle_key
    from chalicelib.records import CounterSlot

    pair = throttle_key("login-account-source", subject_of("ada@example.com", source_of("203.0.113.9")))
    account = throttle_key("login-account", subject_of("ada@example.com"))
    other = throttle_key("login-account", subject_of("bob@example.com"))
    for key in (pair, account, other):
        assert aws.store.take_slot(CounterSlot(key, 900, 1))
        assert not aws.store.take_slot(CounterSlot(key, 900, 1))  # full
    aws.store.add_strike(pair, lambda strikes: 600, 3600)
    assert aws.store.blocked_until(pair) is not None

    out = ok(capsys, "clear-throttle", "--email", " Ada@Example.com ", "--source", "203.0.113.9")
    assert "login-account:" in out and "login-account-source:" in out
    assert aws.store.blocked_until(pair) is None
    assert aws.store.take_slot(CounterSlot(pair, 900, 1)) and aws.store.take_slot(CounterSlot(account, 900, 1))
    assert not aws.store.take_slot(CounterSlot(other, 900, 1))  # another account's throttle is left alone
    code, _, err = run(capsys, "clear-throttle")
    assert code == 2 and "--email" in err
