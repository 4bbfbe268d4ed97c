"""Revocation that always wins (issue 11): a withdrawal of authority and an issuance from it are
ordered by one condition both check, so whichever runs second sees the first.

The races run the oauth/ services themselves in threads (chalice's test client is not meant for
concurrent use) on MemoryStore, whose every operation is atomic as each DynamoDB call is (moto, which
conftest serialises call by call, gives the same interleavings, five times slower);
tests/test_store_contract.py proves both stores decide each condition alike. The call counts run on moto.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from chalicelib.oauth import accounts
from chalicelib.oauth.developer import Developer, delete_application
from chalicelib.oauth.errors import OAuthError
from tests import authorize_support as front
from tests import lifecycle_helpers as lifecycle
from tests.developer_support import sign_in
from tests.lifecycle_helpers import make_client
from tests.race_support import all_at_once
from tests.store_support import save_user
from tests.token_helpers import CH, V, World, basic, endpoint_for, make_world

pytestmark = pytest.mark.store("memory")
TRIALS = 40
MANY = 10  # grants under one consent or app: the cost of ending them must not grow with their number


def _race(first: Callable[[], Any], second: Callable[[], Any]) -> list[Any]:
    """Run both at once; each result, or the error it raised."""
    return all_at_once(first, second, timeout=30)


def _exchange(world: World, name: str, code: str) -> Callable[[], dict[str, Any]]:
    client = world.clients[name]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uris[0],
            "code_verifier": V}
    endpoint = endpoint_for(world.services)
    return lambda: endpoint.handle(form, basic(client.client_id, client.secret)["Authorization"])


def _still_works(world: World, name: str, tokens: Any) -> bool:
    """Whether tokens from the exchange still refresh or introspect as active."""
    if not isinstance(tokens, dict):
        return False
    client = world.clients[name]
    services = world.services
    world.services.clients.forget(client.client_id)
    try:
        endpoint_for(services).handle({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                                      basic(client.client_id, client.secret)["Authorization"])
        return True
    except OAuthError:
        pass
    return _active(services, tokens["access_token"])


def _active(services: Any, token: str) -> bool:
    """Introspected by a resource server (it may ask about every client's tokens)."""
    caller = services.store.get_client("rs1") or make_client(services, "rs1", resource_server=True)
    return services.introspector.introspect(caller, token)["active"]


def _developer(world: World) -> Developer:
    return world.services.developer


def test_revoke_access_racing_a_code_exchange_never_leaves_working_tokens(aws):
    world = make_world(aws)
    developer = _developer(world)
    c1 = world.clients["C1"]
    survivors = []
    for trial in range(TRIALS):
        code = world.issue_code(c1, challenge=CH)
        exchanged, _ = _race(_exchange(world, "C1", code),
                             lambda: developer.revoke_access(world.user_id, c1.client_id))
        if _still_works(world, "C1", exchanged):
            survivors.append(trial)
    assert survivors == [], f"{len(survivors)} of {TRIALS} trials left working tokens"
    assert world.store.get_consent(world.user_id, c1.client_id) is None


def test_deleting_an_app_racing_a_code_exchange_never_leaves_working_tokens(aws):
    world = make_world(aws)
    developer = _developer(world)
    survivors = []
    for trial in range(TRIALS):
        client = world.add_client(f"D{trial}", [f"https://d{trial}.example/cb"])
        code = world.issue_code(client, challenge=CH)
        record = world.store.get_client(client.client_id)
        exchanged, _ = _race(_exchange(world, f"D{trial}", code),
                             lambda: _delete(developer, world, record))
        if _still_works(world, f"D{trial}", exchanged):
            survivors.append(trial)
    assert survivors == [], f"{len(survivors)} of {TRIALS} trials left working tokens"


def _delete(developer: Developer, world: World, record) -> None:

    delete_application(world.store, world.services.clients, record, via="developer")


# --- the same windows, hit every time: the exchange commits between what the revoker reads and writes --


class _ExchangeBeforeFirstWrite:
    """The store as a revoker sees it: a complete code exchange commits just before the revoker's first
    write, the window a revoker that reads first and writes after leaves open."""

    WRITES = ("delete_", "revoke_", "update_", "save_", "put_")

    def __init__(self, store: Any, exchange: Callable[[], Any]) -> None:
        self._store = store
        self._exchange: Callable[[], Any] | None = exchange
        self.exchanged: Any = None

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if self._exchange is None or not name.startswith(self.WRITES):
            return attribute
        exchange, self._exchange = self._exchange, None

        def first_write(*args: Any, **kwargs: Any) -> Any:
            self.exchanged = exchange()
            return attribute(*args, **kwargs)

        return first_write


def test_an_exchange_committed_while_access_is_revoked_leaves_nothing_working(aws):
    world = make_world(aws)
    c1 = world.clients["C1"]
    world.issue_code(c1)  # an earlier grant: the revoker has something to read
    store = _ExchangeBeforeFirstWrite(world.store, _exchange(world, "C1", world.issue_code(c1)))
    services = world.services
    developer = Developer(store, services.clients, services.settings, services.clients.clock)
    developer.revoke_access(world.user_id, c1.client_id)
    assert isinstance(store.exchanged, dict)  # the exchange won its race
    assert not _still_works(world, "C1", store.exchanged)


def test_an_exchange_committed_while_the_app_is_deleted_leaves_nothing_working(aws):
    world = make_world(aws)
    c1 = world.clients["C1"]
    store = _ExchangeBeforeFirstWrite(world.store, _exchange(world, "C1", world.issue_code(c1)))
    delete_application(store, world.services.clients, world.store.get_client(c1.client_id), via="developer")
    assert isinstance(store.exchanged, dict)
    assert not _active(world.services, store.exchanged["access_token"])
    assert not _active(world.services, store.exchanged["refresh_token"])


# --- O(1) for the request: one write ends every grant, however many there are --------------------------


def _dynamodb_calls(action: Callable[[], Any]) -> int:
    from chalicelib.store.dynamo import shared_connection

    events = shared_connection().client.meta.events
    calls: list[str] = []

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events.register("before-call.dynamodb", count)
    try:
        action()
    finally:
        events.unregister("before-call.dynamodb", count)
    return len(calls)


def _grants(world: World, name: str, count: int) -> list[dict[str, Any]]:
    return [_exchange(world, name, world.issue_code(world.clients[name]))() for _ in range(count)]


@pytest.mark.store("dynamo")  # counts DynamoDB calls
def test_revoking_access_costs_the_same_for_one_grant_or_many(aws):
    world = make_world(aws)
    developer = _developer(world)
    _grants(world, "C1", 1)
    many = _grants(world, "C2", MANY)
    one_call = _dynamodb_calls(lambda: developer.revoke_access(world.user_id, world.clients["C1"].client_id))
    many_calls = _dynamodb_calls(lambda: developer.revoke_access(world.user_id, world.clients["C2"].client_id))
    assert many_calls == one_call <= 2
    assert not any(_active(aws, tokens["access_token"]) for tokens in many)


@pytest.mark.store("dynamo")  # counts DynamoDB calls
def test_deleting_an_app_costs_the_same_for_one_grant_or_many(aws):
    world = make_world(aws)
    _grants(world, "C1", 1)
    many = _grants(world, "C2", MANY)
    records = [world.store.get_client(world.clients[name].client_id) for name in ("C1", "C2")]
    calls = [_dynamodb_calls(lambda r=record: delete_application(world.store, aws.clients, r, via="developer"))
             for record in records]
    assert calls[0] == calls[1] <= 1
    assert not any(_active(aws, tokens["refresh_token"]) for tokens in many)


def test_approving_the_app_again_does_not_revive_grants_ended_by_revoking_access(aws):
    world = make_world(aws)
    c1 = world.clients["C1"]
    (old,) = _grants(world, "C1", 1)
    _developer(world).revoke_access(world.user_id, c1.client_id)
    (new,) = _grants(world, "C1", 1)  # the user approves the app again: a new consent
    assert _active(aws, new["access_token"]) and not _active(aws, old["access_token"])
    assert not _still_works(world, "C1", old)


# --- what introspection and refresh see after a withdrawal ------------------------------------------


def test_a_deleted_machine_apps_client_credentials_tokens_introspect_inactive(clients):
    machine = make_client(clients, "m1")
    token = lifecycle.client_token(clients, "m1")
    assert _active(clients, token)
    delete_application(clients.store, clients.clients, machine, via="developer")
    assert not _active(clients, token)


def _set(services: Any, client_id: str, **changes: Any) -> None:
    """An operator or owner change to the client, seen at once by this instance."""
    services.store.update_client(client_id, lambda client: client.__dict__.update(changes))
    services.clients.forget(client_id)


def _refresh(http: Any, refresh_token: str, **extra: str) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return lifecycle.post_form(http, "/token", form, lifecycle.basic("c1"))


def test_a_disabled_clients_tokens_are_inactive_and_stop_refreshing(clients, http):
    user_tokens, machine_token = lifecycle.mint(clients, "c1"), lifecycle.client_token(clients, "c1")
    _set(clients, "c1", disabled=True)
    assert not _active(clients, user_tokens.access_token)
    assert not _active(clients, user_tokens.refresh_token)
    assert not _active(clients, machine_token)
    refreshed = _refresh(http, user_tokens.refresh_token)
    assert refreshed.status_code == 401
    _set(clients, "c1", disabled=False)  # enabling it again brings its grants back: nothing was revoked
    assert _active(clients, user_tokens.access_token)


def test_a_disabled_users_tokens_introspect_inactive(clients):
    minted = lifecycle.mint(clients, "c1")
    assert _active(clients, minted.access_token)
    user = clients.store.get_user(minted.user_id)
    user.disabled = True
    save_user(clients.store, user)
    assert not _active(clients, minted.access_token)
    assert not _active(clients, minted.refresh_token)


def test_a_disabled_user_is_signed_out_of_every_page(aws, http):
    browser = sign_in(aws, http, "ada@example.com")
    assert browser.get("/account/apps").status_code == 200
    user = aws.store.get_user(browser.user_id)
    user.disabled = True
    save_user(aws.store, user)
    for path in ("/account/apps", "/developer/apps"):
        response = browser.get(path)
        assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


def test_refresh_drops_a_scope_the_owner_withdrew(clients, http):
    minted = lifecycle.mint(clients, "c1", scope="read:analysis write:project")
    _set(clients, "c1", scopes=["read:analysis", "read:project"])
    response = _refresh(http, minted.refresh_token)
    assert response.status_code == 200, response.body
    tokens = json.loads(response.body)
    assert tokens["scope"] == "read:analysis"
    claims = clients.access_tokens.verify(tokens["access_token"], clients.settings.api_audience)
    assert claims.scope == ["read:analysis"]
    again = _refresh(http, tokens["refresh_token"], scope="write:project")
    assert again.status_code == 400  # the successor no longer carries it either


def test_a_code_exchanged_after_the_owner_withdrew_a_scope_does_not_grant_it(aws):
    world = make_world(aws)
    c1 = world.clients["C1"]
    code = world.issue_code(c1, scope="read:analysis write:analysis")
    _set(aws, c1.client_id, scopes=["read:analysis"])
    tokens = _exchange(world, "C1", code)()
    assert tokens["scope"] == "read:analysis"


# --- a parked authorization request is re-checked against the client as it is when it resumes ---------


def _parked_consent(aws, http):
    """A signed-in user on the consent page of c1, asking for read:analysis and read:project."""

    front.add_fixture_clients(aws.store)
    accounts.create_user(aws.store, front.EMAIL, front.PASSWORD, clock.now())
    browser = front.Browser(http)
    assert front.sign_in(browser).status_code == 200
    return browser, front.consent_page(browser, front.az(scope="read:analysis read:project"))


def test_a_parked_request_never_redirects_to_a_uri_the_owner_removed(aws, http):

    browser, page = _parked_consent(aws, http)
    _set(aws, "c1", redirect_uris=["https://c1.example/new-cb"])
    response = front.decide(browser, page, "allow")
    front.assert_page(response, response.status_code)
    assert "c1.example/cb" not in response.body.decode()


def test_a_parked_request_does_not_grant_a_scope_the_owner_withdrew(aws, http):

    browser, page = _parked_consent(aws, http)
    _set(aws, "c1", scopes=["read:analysis"])
    code = front.response_params(front.decide(browser, page, "allow"))["code"]
    assert aws.store.get_code(digest(code)).scope == "read:analysis"
    assert aws.store.get_consent(aws.store.get_code(digest(code)).user_id, "c1").scopes == ["read:analysis"]
