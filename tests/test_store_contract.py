"""MemoryStore keeps DynamoStore's contract: each rule below runs against both (DynamoStore on moto).

Conditional writes raise ConditionFailed (AlreadyExists for a put that must create), every read drops
expired items, a transaction writes all or nothing, and a read returns a copy.
"""

from __future__ import annotations

import pytest

from chalicelib import clock
from chalicelib.records import (
    AlreadyExists,
    AuthorizationRequestRecord,
    ClientRecord,
    ClientSecret,
    CodeRecord,
    ConditionFailed,
    CounterSlot,
    GrantRecord,
    LimitReached,
    OpenIdRequest,
    QuotaReached,
    RefreshTokenRecord,
    RegistrationTokenRecord,
    SessionRecord,
    UserRecord,
)
from chalicelib.store.memory import MemoryStore
from tests.store_support import (
    drop_app_counter,
    list_client_grant_ids,
    put_grant,
    put_refresh_token,
    save_client,
    scan_kinds,
)
from tests.token_helpers import freeze_clock


@pytest.fixture(params=["memory", "dynamo"])
def store(request, monkeypatch):
    """Each store on a frozen clock (only clock.travel moves it: the expiry rules are to the second)."""
    if request.param == "memory":
        clock.reset()
        request.addfinalizer(clock.reset)
        chosen = MemoryStore(clock.now)
    else:
        chosen = request.getfixturevalue("aws").store
    freeze_clock(monkeypatch)
    return chosen


def _user(store, user_id="usr_1", email="ada@example.com", disabled=False) -> UserRecord:
    user = UserRecord(user_id, email, "hash", clock.now(), disabled)
    store.create_user(user)
    return user


def _client(client_id="app_1", owner_id=None) -> ClientRecord:
    return ClientRecord(client_id, "App", ["https://app.example/cb"], ["read:analysis"],
                        ["authorization_code", "refresh_token"], "client_secret_basic", owner_id=owner_id,
                        secrets=[ClientSecret("d1")], created_at=clock.now())


def _code(digest="code1", grant_id="gr_1", user_id="usr_1", lifetime=60, **authority) -> CodeRecord:
    now = clock.now()
    return CodeRecord(digest, "app_1", "https://app.example/cb", True, user_id, "read:analysis", None, grant_id,
                      now, now + lifetime, **authority)


def _grant(grant_id="gr_1", user_id="usr_1", lifetime=3600, **authority) -> GrantRecord:
    return GrantRecord(grant_id, "app_1", user_id, "read:analysis", clock.now(), clock.now() + lifetime, **authority)


def _refresh(digest="rt1", grant_id="gr_1", user_id="usr_1", **authority) -> RefreshTokenRecord:
    now = clock.now()
    return RefreshTokenRecord(digest, grant_id, "app_1", user_id, "read:analysis", now, now + 3600, **authority)


def _consented(store, user_id="usr_1") -> dict[str, str]:
    """The consent (and its client), as /authorize leaves them; the authority a code carries."""
    if store.get_client("app_1") is None:
        store.create_client(_client())
    return {"consent_generation": store.save_consent_scopes(user_id, "app_1", ["read:analysis"], clock.now())}


def test_a_put_that_must_create_refuses_a_taken_key(store):
    now = clock.now()
    store.put_session(SessionRecord("s1", "usr_1", now, now + 60))
    with pytest.raises(AlreadyExists):
        store.put_session(SessionRecord("s1", "usr_2", now, now + 60))
    assert store.get_session("s1").user_id == "usr_1"
    store.put_code(_code())
    with pytest.raises(AlreadyExists):
        store.put_code(_code(user_id="usr_2"))
    put_grant(store, _grant())
    with pytest.raises(AlreadyExists):
        put_grant(store, _grant(user_id="usr_2"))
    put_refresh_token(store, _refresh())
    with pytest.raises(AlreadyExists):
        put_refresh_token(store, _refresh(user_id="usr_2"))


def test_creating_a_user_is_all_or_nothing(store):
    _user(store)
    with pytest.raises(AlreadyExists):
        _user(store, user_id="usr_2")  # the email is taken: the new user item is not written either
    assert store.get_user("usr_2") is None
    assert store.find_user_id("ada@example.com") == "usr_1"
    with pytest.raises(AlreadyExists):
        _user(store, email="bob@example.com")  # the id is taken: the new email item is not written either
    assert store.find_user_id("bob@example.com") is None


def test_clients_create_save_update_delete_with_the_owners_index(store):
    store.create_client(_client(owner_id="usr_1"))
    with pytest.raises(AlreadyExists):
        store.create_client(_client(owner_id="usr_2"))
    assert store.list_owned_apps("usr_2") == []
    assert [app.client_id for app in store.list_owned_apps("usr_1")] == ["app_1"]
    with pytest.raises(ConditionFailed):
        save_client(store, _client("app_gone"))
    assert store.get_client("app_gone") is None

    def rename(client: ClientRecord) -> None:
        client.name = "Renamed"

    assert store.update_client("app_1", rename).name == "Renamed"
    assert store.list_owned_apps("usr_1")[0].name == "Renamed"
    assert store.update_client("app_missing", rename) is None
    store.delete_client(store.get_client("app_1"))
    assert store.get_client("app_1") is None and store.list_owned_apps("usr_1") == []


def test_update_client_reapplies_a_change_over_a_concurrent_write(store):
    store.create_client(_client())
    calls = []

    def add_secret(client: ClientRecord) -> None:
        if not calls:  # another request writes between this read and this write
            store.update_client("app_1", lambda other: other.secrets.append(ClientSecret("concurrent")))
        calls.append(1)
        client.secrets.append(ClientSecret("mine"))

    store.update_client("app_1", add_secret)
    assert len(calls) == 2
    assert [s.digest for s in store.get_client("app_1").secrets] == ["d1", "concurrent", "mine"]


def test_redeeming_a_code_writes_everything_once(store):
    _user(store)
    authority = _consented(store)
    code = _code(**authority)
    store.put_code(code)
    store.redeem_code(code, _grant(**authority), _refresh(**authority))
    assert store.get_code("code1").used_at is not None
    assert store.get_code("code1", include_used=False) is None
    assert store.get_grant("app_1", "gr_1").active(clock.now())
    assert store.get_refresh_token("rt1") is not None
    standing = store.get_standing("app_1", "usr_1", "gr_1")
    assert standing.grant.consent_generation == standing.consent.generation == authority["consent_generation"]
    assert (standing.client.client_id, standing.user.user_id) == ("app_1", "usr_1")
    with pytest.raises(ConditionFailed):  # the second redemption writes nothing
        store.redeem_code(code, _grant("gr_2", **authority), _refresh("rt2", "gr_2", **authority))
    assert store.get_grant("app_1", "gr_2") is None and store.get_refresh_token("rt2") is None


OBSTACLES = ["no consent", "consent withdrawn and given again", "user disabled", "user gone", "user bulk-revoked",
             "client disabled", "client gone", "client bulk-revoked", "code expired", "grant exists"]


def _withdraw(store, obstacle: str) -> None:
    """What each withdrawal writes (one item each), after the code was issued."""
    if obstacle == "consent withdrawn and given again":
        store.delete_consent("usr_1", "app_1")
        _consented(store)
    elif obstacle == "user bulk-revoked":
        store.update_user("usr_1", lambda user: setattr(user, "generation", "new"))
    elif obstacle in ("client disabled", "client bulk-revoked"):
        changes = {"disabled": True} if obstacle == "client disabled" else {"generation": "new"}
        store.update_client("app_1", lambda client: client.__dict__.update(changes))
    elif obstacle == "client gone":
        store.delete_client(store.get_client("app_1"))


@pytest.mark.parametrize("obstacle", OBSTACLES)
def test_a_failed_redemption_writes_nothing(store, obstacle):
    if obstacle != "user gone":
        _user(store, disabled=obstacle == "user disabled")
    authority = _consented(store) if obstacle != "no consent" else {}
    if obstacle == "grant exists":
        put_grant(store, _grant(user_id="usr_other"))
    code = _code(**authority)
    store.put_code(code)
    _withdraw(store, obstacle)
    if obstacle == "code expired":
        clock.travel(60)
    with pytest.raises(ConditionFailed):
        store.redeem_code(code, _grant(**authority), _refresh(**authority))
    assert store.get_refresh_token("rt1") is None
    if obstacle != "code expired":
        assert store.get_code("code1").used_at is None
    if obstacle != "grant exists":
        assert store.get_grant("app_1", "gr_1") is None


@pytest.mark.parametrize("obstacle", [o for o in OBSTACLES if o not in ("no consent", "code expired", "grant exists",
                                                                        "user disabled", "user gone")])
def test_a_refresh_token_does_not_rotate_once_its_authority_is_withdrawn(store, obstacle):
    _user(store)
    authority = _consented(store)
    put_grant(store, _grant(**authority))
    old = _refresh(**authority)
    put_refresh_token(store, old)
    _withdraw(store, obstacle)
    with pytest.raises(ConditionFailed):
        store.rotate_refresh_token(old, _refresh("rt2", **authority), "sealed")
    assert store.get_refresh_token("rt1").used_at is None and store.get_refresh_token("rt2") is None


def test_a_refresh_token_rotates_once_while_its_grant_and_user_stand(store):
    _user(store)
    authority = _consented(store)
    put_grant(store, _grant(**authority))
    old = _refresh(**authority)
    put_refresh_token(store, old)
    store.rotate_refresh_token(old, _refresh("rt2", **authority), "sealed")
    spent = store.get_refresh_token("rt1")
    assert (spent.used_at is not None, spent.successor_digest, spent.grace_response) == (True, "rt2", "sealed")
    with pytest.raises(ConditionFailed):
        store.rotate_refresh_token(old, _refresh("rt3", **authority), "sealed")
    assert store.get_refresh_token("rt3") is None

    current = store.get_refresh_token("rt2")
    store.revoke_grant("app_1", "gr_1")
    with pytest.raises(ConditionFailed):
        store.rotate_refresh_token(current, _refresh("rt4", **authority), "sealed")
    assert store.get_refresh_token("rt4") is None and store.get_refresh_token("rt2").used_at is None


def test_a_refresh_token_of_a_disabled_user_does_not_rotate(store):
    _user(store)
    authority = _consented(store)
    put_grant(store, _grant(**authority))
    old = _refresh(**authority)
    put_refresh_token(store, old)
    store.update_user("usr_1", lambda user: setattr(user, "disabled", True))
    with pytest.raises(ConditionFailed):
        store.rotate_refresh_token(old, _refresh("rt2", **authority), "sealed")
    assert store.get_refresh_token("rt1").used_at is None and store.get_refresh_token("rt2") is None


def test_revocation_keeps_the_first_time_and_ignores_a_missing_grant(store):
    put_grant(store, _grant())
    store.revoke_grant("app_1", "gr_1")
    first = store.get_grant("app_1", "gr_1").revoked_at
    clock.travel(10)
    store.revoke_grant("app_1", "gr_1")
    assert store.get_grant("app_1", "gr_1").revoked_at == first
    store.revoke_grant("app_1", "gr_missing")
    assert store.get_grant("app_1", "gr_missing") is None
    assert list_client_grant_ids(store, "app_1") == ["gr_1"]


def test_every_read_drops_expired_items(store):
    now = clock.now()
    store.put_session(SessionRecord("s1", "usr_1", now, now + 60))
    store.put_code(_code(lifetime=60))
    store.put_authorization_request(
        AuthorizationRequestRecord("r1", "app_1", "https://app.example/cb", True, "read:analysis", None, None, [],
                                   now, now + 60))
    put_grant(store, _grant(lifetime=60))
    store.put_registration_token(RegistrationTokenRecord("i1", now, now + 60))
    clock.travel(59)
    assert store.get_session("s1") and store.get_code("code1") and store.get_grant("app_1", "gr_1")
    assert store.get_authorization_request("r1") and store.get_registration_token("i1")
    clock.travel(1)
    assert store.get_session("s1") is None and store.get_code("code1") is None
    assert store.get_grant("app_1", "gr_1") is None and store.get_authorization_request("r1") is None
    assert store.get_registration_token("i1") is None
    with pytest.raises(ConditionFailed):
        store.consume_authorization_request("r1")


def test_a_parked_request_is_consumed_once(store):
    now = clock.now()
    store.put_authorization_request(
        AuthorizationRequestRecord("r1", "app_1", "https://app.example/cb", True, "read:analysis", None, None, [],
                                   now, now + 60))
    store.consume_authorization_request("r1")
    with pytest.raises(ConditionFailed):
        store.consume_authorization_request("r1")
    assert store.get_authorization_request("r1") is None


def test_openid_fields_survive_the_round_trip(store):
    """The parked request's OpenID part, the code's nonce and sid, the grant's and refresh token's auth_time."""
    now = clock.now()
    oidc = OpenIdRequest(nonce="n", max_age=10, login_hint="ada@example.com", hint_subject="usr_1",
                         id_token_claims=["email"], userinfo_claims=["name"])
    store.put_authorization_request(
        AuthorizationRequestRecord("r2", "app_1", "https://app.example/cb", True, "openid", None, None, [],
                                   now, now + 60, oidc=oidc))
    assert store.get_authorization_request("r2").oidc == oidc
    code = _code("code2")
    code.nonce, code.sid, code.userinfo_claims = "n", "sid1", ["name"]
    store.put_code(code)
    assert store.get_code("code2") == code
    grant = _grant("gr_9")
    grant.auth_time, grant.sid, grant.userinfo_claims = now - 5, "sid1", ["name"]
    put_grant(store, grant)
    assert store.get_grant("app_1", "gr_9") == grant
    refresh = _refresh("rt9", "gr_9")
    refresh.auth_time, refresh.sid = now - 5, "sid1"
    put_refresh_token(store, refresh)
    assert store.get_refresh_token("rt9") == refresh


def test_a_consent_keeps_its_generation_until_withdrawn_and_lists_in_key_order(store):
    _user(store)
    generations = {c: store.save_consent_scopes("usr_1", c, ["read:analysis"], clock.now()) for c in ("app_2", "app_1")}
    again = store.save_consent_scopes("usr_1", "app_1", ["read:analysis", "read:project"], clock.now())
    assert again == generations["app_1"] != generations["app_2"]
    consents = store.list_consents("usr_1")
    assert [(c.client_id, c.scopes, c.generation) for c in consents] == [
        ("app_1", ["read:analysis", "read:project"], generations["app_1"]),
        ("app_2", ["read:analysis"], generations["app_2"]),
    ]
    store.delete_consent("usr_1", "app_1")
    assert store.get_consent("usr_1", "app_1") is None
    assert store.save_consent_scopes("usr_1", "app_1", ["read:analysis"], clock.now()) != generations["app_1"]


def test_operator_changes_users_and_reads_by_scan(store):
    user = _user(store)
    store.create_client(_client())
    store.put_registration_token(RegistrationTokenRecord("i1", clock.now(), clock.now() + 60, "team"))
    assert store.update_user("usr_1", lambda u: setattr(u, "disabled", True)).disabled
    assert store.get_user("usr_1").disabled and store.update_user("usr_missing", print) is None
    assert [u.user_id for u in store.scan_users()] == ["usr_1"]
    assert [c.client_id for c in store.scan_clients()] == ["app_1"]
    assert [t.description for t in store.scan_registration_tokens()] == ["team"]
    store.delete_registration_token("i1")
    assert store.get_registration_token("i1") is None
    store.delete_user(user)
    assert store.get_user("usr_1") is None and store.find_user_id("ada@example.com") is None


def test_rate_windows_count_and_expire(store):
    assert [store.count_attempt("login:ada", 60) for _ in range(3)] == [1, 2, 3]
    assert store.attempts("login:ada", 60) == 3 and store.attempts("login:bob", 60) == 0
    clock.travel(60)
    assert store.attempts("login:ada", 60) == 0
    assert store.count_attempt("login:ada", 60) == 1


def test_throttle_slots_reserve_up_to_the_limit_and_give_back(store):
    slot = CounterSlot("login-source:s1", 60, 2)
    assert [store.take_slot(slot) for _ in range(3)] == [True, True, False]
    assert store.counter(slot) == 2
    store.give_back_slot(slot)
    assert store.counter(slot) == 1 and store.take_slot(slot)
    clock.travel(60)
    assert store.counter(slot) == 0 and store.take_slot(slot)
    store.give_back_slot(slot)
    store.give_back_slot(slot)  # never below zero
    assert store.counter(slot) == 0


def test_an_owners_applications_are_counted_within_the_limit(store):
    """create_client with max_owned: QuotaReached, nothing written, once the owner has that many; a
    deletion frees a place (once, even when repeated); other owners and unlimited creations unaffected."""
    for n in (1, 2):
        store.create_client(_client(f"app_{n}", owner_id="usr_1"), max_owned=2)
    with pytest.raises(QuotaReached):
        store.create_client(_client("app_3", owner_id="usr_1"), max_owned=2)
    assert store.get_client("app_3") is None and len(store.list_owned_apps("usr_1")) == 2
    store.create_client(_client("app_4", owner_id="usr_2"), max_owned=2)  # another owner has its own count
    store.delete_client(store.get_client("app_1"))
    store.delete_client(_client("app_1", owner_id="usr_1"))  # again: counted down once only
    store.create_client(_client("app_3", owner_id="usr_1"), max_owned=2)
    with pytest.raises(QuotaReached):
        store.create_client(_client("app_5", owner_id="usr_1"), max_owned=2)
    store.create_client(_client("app_6", owner_id="usr_1"))  # no limit asked (operator tools): still counted
    with pytest.raises(QuotaReached):
        store.create_client(_client("app_7", owner_id="usr_1"), max_owned=3)


def test_apps_made_before_the_counter_existed_count_too(store):
    """An owner whose apps predate the counter: the count starts from the index items."""
    for n in (1, 2):
        store.create_client(_client(f"app_{n}", owner_id="usr_1"))
    drop_app_counter(store, "usr_1")
    with pytest.raises(QuotaReached):
        store.create_client(_client("app_3", owner_id="usr_1"), max_owned=2)
    drop_app_counter(store, "usr_1")
    store.delete_client(store.get_client("app_1"))
    store.create_client(_client("app_3", owner_id="usr_1"), max_owned=2)
    assert sorted(app.client_id for app in store.list_owned_apps("usr_1")) == ["app_2", "app_3"]


def test_reads_with_limits_refuse_while_a_counter_is_full_and_read_nothing_else(store):
    """A code or refresh token read together with throttle counters: LimitReached (naming the full slot)
    while one is at its limit, in the current window only; the item is read as usual otherwise."""
    store.put_code(_code(lifetime=600))
    put_refresh_token(store, _refresh())
    roomy, tight = CounterSlot("client-auth-source:s", 60, 5), CounterSlot("client-auth:c", 60, 2)
    limits = (tight, roomy)
    store.check_limits(limits)  # no counter yet: nothing is full
    assert store.get_code("code1", limits=limits).code_digest == "code1"
    assert store.get_refresh_token("rt1", limits=limits).token_digest == "rt1"
    assert store.get_code("absent", limits=limits) is None
    assert store.take_slot(tight) and store.take_slot(tight) and store.take_slot(roomy)
    reads = (lambda: store.check_limits(limits), lambda: store.get_code("code1", limits=limits),
             lambda: store.get_refresh_token("rt1", limits=limits), lambda: store.get_code("absent", limits=limits))
    for read in reads:
        with pytest.raises(LimitReached) as reached:
            read()
        assert reached.value.slot == tight
    store.check_limits((roomy,))  # one unit of five: not full
    assert store.get_code("code1").used_at is None  # reads without limits are unchanged
    clock.travel(60)  # the next window: the full counter is history
    store.check_limits(limits)
    assert store.get_code("code1", limits=limits).used_at is None


def test_throttle_blocks_back_off_and_clear(store):
    now = clock.now()
    assert store.blocked_until("k") is None
    assert store.add_strike("k", lambda strikes: 100 * strikes, 1000) == now + 100
    assert store.add_strike("k", lambda strikes: 100 * strikes, 1000) == now + 200
    assert store.blocked_until("k") == now + 200
    store.take_slot(CounterSlot("k", 60, 5))
    assert store.clear_throttle("k") == 2
    assert store.blocked_until("k") is None and store.counter(CounterSlot("k", 60, 5)) == 0


def test_known_devices_expire(store):
    store.remember_device("d1", "usr_1", clock.now() + 10)
    assert store.device_user_id("d1") == "usr_1" and store.device_user_id("d2") is None
    clock.travel(10)
    assert store.device_user_id("d1") is None


def test_a_read_returns_a_copy(store):
    store.create_client(_client())
    client = store.get_client("app_1")
    client.secrets.clear()
    client.redirect_uris.append("https://evil.example/cb")
    again = store.get_client("app_1")
    assert [s.digest for s in again.secrets] == ["d1"] and again.redirect_uris == ["https://app.example/cb"]


def test_scan_kinds_counts_items_by_kind(store):
    before = scan_kinds(store)
    _user(store)
    store.create_client(_client(owner_id="usr_1"))
    after = scan_kinds(store)
    for kind, added in {"user": 1, "email": 1, "client": 1, "app": 1}.items():
        assert after.get(kind, 0) - before.get(kind, 0) == added


def test_an_expiring_client_is_dropped_on_read_and_touching_only_moves_its_expiry_forward(store):
    client = _client("app_open")
    client.expires_at = clock.now() + 100
    store.create_client(client)
    store.touch_client("app_open", clock.now() + 50)  # never backwards
    assert store.get_client("app_open").expires_at == clock.now() + 100
    store.touch_client("app_open", clock.now() + 300)
    assert store.get_client("app_open").expires_at == clock.now() + 300
    clock.travel(300)
    assert store.get_client("app_open") is None
    store.touch_client("app_open", clock.now() + 300)  # an expired client stays gone
    assert store.get_client("app_open") is None
    store.touch_client("app_missing", clock.now() + 300)  # and a missing one is not created
    assert store.get_client("app_missing") is None
    store.create_client(_client("app_forever"))  # no expiry: touching does nothing either
    store.touch_client("app_forever", clock.now() + 300)
    assert store.get_client("app_forever").expires_at is None


def test_a_metadata_document_client_is_cached_until_its_expiry(store):
    url = "https://agent.example/client.json"
    client = _client(url)
    client.expires_at = clock.now() + 60
    store.put_metadata_client(client)
    assert store.get_metadata_client(url).client_id == url
    assert store.get_client(url) is None  # not a registered client
    clock.travel(60)
    assert store.get_metadata_client(url) is None


def test_resource_servers_are_created_once_read_listed_and_deleted(store):
    from chalicelib.records import ResourceServerRecord

    first = ResourceServerRecord("https://b.example/mcp", "B", {"read:analysis": "Read"}, 600, clock.now(), "app_1")
    store.create_resource_server(first)
    store.create_resource_server(ResourceServerRecord("https://a.example/api", "A", {"read:project": "See"}, 300))
    with pytest.raises(AlreadyExists):
        store.create_resource_server(ResourceServerRecord("https://b.example/mcp", "other", {"x": "y"}, 60))
    assert store.get_resource_server("https://b.example/mcp") == first
    assert store.get_resource_server("https://c.example/") is None
    assert [s.identifier for s in store.list_resource_servers()] == ["https://a.example/api", "https://b.example/mcp"]
    assert store.delete_resource_server("https://b.example/mcp") is True
    assert store.delete_resource_server("https://b.example/mcp") is False
    assert store.get_resource_server("https://b.example/mcp") is None


def test_a_consent_remembers_its_resources(store):
    store.save_consent_scopes("usr_1", "app_1", ["read:analysis"], clock.now(), ["https://b.example/mcp"])
    assert store.get_consent("usr_1", "app_1").resources == ["https://b.example/mcp"]
    _consented(store)  # without resources: the Clipron API only
    assert store.get_consent("usr_1", "app_1").resources == []
