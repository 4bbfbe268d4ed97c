"""RFC 7662 introspection (SECURITY-TESTS.md group I): POST /introspect for confidential clients."""

from __future__ import annotations

import json

import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest, new_token
from chalicelib.records import RefreshTokenRecord
from tests.lifecycle_helpers import SECRET, basic, client_token, introspect, mint, post_form, put_code, revoke
from tests.token_helpers import freeze_clock

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

INACTIVE = {"active": False}


def answer(http, token: str, client_id: str = "rs1", **extra: str) -> dict:
    response = introspect(http, token, client_id, **extra)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"] == "application/json"
    return json.loads(response.body)


def test_i01_authentication_is_required_and_public_clients_cannot_introspect(clients, http):
    minted = mint(clients, "p1")
    missing = post_form(http, "/introspect", {"token": minted.access_token})
    assert missing.status_code == 401 and json.loads(missing.body)["error"] == "invalid_client"
    wrong = post_form(http, "/introspect", {"token": minted.access_token}, basic("rs1", "wrong"))
    assert wrong.status_code == 401 and json.loads(wrong.body)["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    public = post_form(http, "/introspect", {"token": minted.access_token, "client_id": "p1"})
    assert public.status_code == 401 and json.loads(public.body)["error"] == "invalid_client"
    assert "active" not in json.loads(public.body)


def test_i02_an_active_access_token(clients, http):
    minted = mint(clients, "c1", scope="read:analysis write:project")
    body = answer(http, minted.access_token)
    assert set(body) == {"active", "scope", "client_id", "sub", "aud", "iss", "exp", "iat", "token_type", "jti"}
    assert body["active"] is True
    assert body["scope"] == "read:analysis write:project"
    assert body["client_id"] == "c1" and body["sub"] == "user-1"
    assert body["aud"] == clients.settings.api_audience and body["iss"] == clients.settings.issuer
    assert body["exp"] - body["iat"] == clients.settings.access_token_seconds
    assert body["token_type"] == "Bearer"
    assert minted.refresh_token not in json.dumps(body)


def test_i02_an_active_refresh_token(clients, http):
    minted = mint(clients, "c1", scope="read:analysis", refresh_seconds=3600)
    body = answer(http, minted.refresh_token)
    now = clock.now()
    assert body == {"active": True, "scope": "read:analysis", "client_id": "c1", "sub": "user-1",
                    "exp": body["exp"], "iat": body["iat"], "token_type": "refresh_token"}
    assert abs(body["exp"] - (now + 3600)) <= 2 and abs(body["iat"] - now) <= 2


def test_the_owning_client_introspects_its_own_tokens(clients, http):
    minted = mint(clients, "c1")
    assert answer(http, minted.access_token, "c1")["active"] is True
    assert answer(http, minted.refresh_token, "c1")["active"] is True


def test_i03_unknown_garbage_or_empty_tokens_are_inactive(clients, http):
    for token in ["", "garbage", "x" * 43, "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "..", "x" * 4000, "é" * 10]:
        assert answer(http, token) == INACTIVE, token


def test_i04_expired_tokens_are_inactive_though_still_stored(clients, http, monkeypatch):
    freeze_clock(monkeypatch)  # the boundary is to the second: real time must not tick in between
    minted = mint(clients, "c1", refresh_seconds=clients.settings.access_token_seconds)
    clock.travel(clients.settings.access_token_seconds - 1)
    assert answer(http, minted.access_token)["active"] is True
    assert answer(http, minted.refresh_token)["active"] is True
    clock.travel(1)  # now == exp: expired (F-09)
    assert answer(http, minted.access_token) == INACTIVE
    assert answer(http, minted.refresh_token) == INACTIVE


def test_i05_a_rotated_refresh_token_is_inactive(clients, http):
    minted = mint(clients, "c1")
    old = clients.store.get_refresh_token(digest(minted.refresh_token))
    successor = new_token()
    now = clock.now()
    clients.store.rotate_refresh_token(
        old, RefreshTokenRecord(digest(successor), old.grant_id, "c1", "user-1", old.scope, now, now + 600), "sealed"
    )
    assert answer(http, minted.refresh_token) == INACTIVE
    assert answer(http, successor)["active"] is True


def test_i05_every_token_of_a_revoked_grant_is_inactive(clients, http):
    minted = mint(clients, "c1")
    second_access = clients.access_tokens.issue(
        sub="user-1", client_id="c1", scope="read:analysis", audience=clients.settings.api_audience,
        grant_id=minted.grant_id,
    ).token
    other = mint(clients, "c1")
    clients.store.revoke_grant("c1", minted.grant_id)
    for token in (minted.access_token, minted.refresh_token, second_access):
        assert answer(http, token) == INACTIVE
    assert answer(http, other.access_token)["active"] is True


def test_i05_a_token_revoked_through_the_endpoint_is_inactive(clients, http):
    minted = mint(clients, "c1")
    assert revoke(http, minted.access_token).status_code == 200
    assert answer(http, minted.access_token) == INACTIVE


@pytest.mark.parametrize("kind, hint", [
    ("access_token", "refresh_token"), ("refresh_token", "access_token"), ("access_token", "foo"),
    ("refresh_token", "foo"),
])
def test_i06_a_wrong_or_unknown_hint_still_resolves_the_token(clients, http, kind, hint):
    minted = mint(clients, "c1")
    assert answer(http, getattr(minted, kind), token_type_hint=hint)["active"] is True


def test_i07_another_client_sees_foreign_tokens_as_inactive(clients, http):
    minted = mint(clients, "c1")
    assert answer(http, minted.access_token, "c2") == INACTIVE
    assert answer(http, minted.refresh_token, "c2") == INACTIVE
    assert answer(http, minted.access_token, "rs1")["active"] is True  # an operator-flagged resource server


def test_i07_a_token_for_another_audience_is_inactive(clients, http):
    """A token signed here for an audience that is no resource server of this server (RFC 8707) is inactive."""
    token = clients.access_tokens.issue(
        sub="user-1", client_id="c1", scope="read:analysis", audience="https://rs2.example", grant_id=None,
    ).token
    assert answer(http, token) == INACTIVE


def test_i09_a_code_or_a_client_secret_is_inactive(clients, http):
    code = put_code(clients, mint(clients, "c1"))
    assert answer(http, code) == INACTIVE
    assert answer(http, SECRET) == INACTIVE
    assert clients.store.get_code(digest(code)).used_at is None


def test_i10_request_hygiene(clients, http):
    minted = mint(clients, "c1")
    no_token = post_form(http, "/introspect", {}, basic("rs1"))
    assert no_token.status_code == 400 and json.loads(no_token.body)["error"] == "invalid_request"
    twice = post_form(http, "/introspect", [("token", minted.access_token), ("token", "x")], basic("rs1"))
    assert twice.status_code == 400 and json.loads(twice.body)["error"] == "invalid_request"
    as_json = http.post("/introspect", body=json.dumps({"token": minted.access_token}).encode(),
                        headers={"Content-Type": "application/json", **basic("rs1")})
    assert as_json.status_code == 400 and json.loads(as_json.body)["error"] == "invalid_request"
    got = http.get("/introspect", headers=basic("rs1"))
    assert got.status_code == 405 and got.headers["Allow"] == "POST"


def test_client_credentials_tokens_are_active_until_exp(clients, http):
    token = client_token(clients, "c1", scope="read:analysis")
    body = answer(http, token)
    assert body["active"] is True
    assert body["sub"] == "client:c1" and body["client_id"] == "c1" and body["scope"] == "read:analysis"
    clock.travel(clients.settings.access_token_seconds)
    assert answer(http, token) == INACTIVE


def test_store_failure_is_a_503_never_an_answer(clients, http, monkeypatch):
    from chalicelib.records import StoreUnavailable

    minted = mint(clients, "c1")

    def unavailable(*_: object) -> None:
        raise StoreUnavailable("ProvisionedThroughputExceededException")

    monkeypatch.setattr(type(clients.store), "get_standing", unavailable)
    response = introspect(http, minted.access_token)
    assert response.status_code == 503
    assert json.loads(response.body)["error"] == "temporarily_unavailable"


def test_the_operator_flags_a_resource_server_with_the_cli(clients, http, capsys):
    from chalicelib import cli

    argv = ["create-client", "--name", "Clipron API", "--type", "machine", "--resource-server"]
    assert cli.main(argv) == 0
    created = json.loads(capsys.readouterr().out)
    record = clients.store.get_client(created["client_id"])
    assert record.resource_server is True
    minted = mint(clients, "c1")
    response = post_form(http, "/introspect", {"token": minted.access_token},
                         basic(created["client_id"], created["client_secret"]))
    assert json.loads(response.body)["active"] is True
    public = ["create-client", "--name", "CLI", "--type", "native", "--redirect-uri", "http://127.0.0.1/cb",
              "--resource-server"]
    assert cli.main(public) == 2
