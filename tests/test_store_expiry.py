"""Expired items are still stored (TTL lags by up to days; moto never deletes): every read drops them."""

import boto3
import pytest

from chalicelib import clock
from chalicelib.records import (
    AuthorizationRequestRecord,
    CodeRecord,
    ConditionFailed,
    GrantRecord,
    RefreshTokenRecord,
    RegistrationTokenRecord,
    SessionRecord,
)
from tests.store_support import put_grant
from tests.token_helpers import freeze_clock


def _items_in_table(services):
    table = boto3.resource("dynamodb").Table(services.settings.table_name)
    return table.scan()["Items"]


def test_expired_items_are_absent_on_every_read(aws):
    store, past = aws.store, clock.now() - 1
    store.put_session(SessionRecord("s1", "usr_1", past - 100, past))
    store.put_code(CodeRecord("c1", "app", "https://c/cb", True, "usr_1", "read:analysis", None, "g1", 0, past))
    store.put_authorization_request(
        AuthorizationRequestRecord("r1", "app", "https://c/cb", True, "read:analysis", None, None, [], 0, past)
    )
    put_grant(store, GrantRecord("g1", "app", "usr_1", "read:analysis", 0, past))
    store._put(store._refresh_item(RefreshTokenRecord("t1", "g1", "app", "usr_1", "read:analysis", 0, past)))
    store.put_registration_token(RegistrationTokenRecord("i1", 0, past))

    kinds = {item["kind"] for item in _items_in_table(aws)}
    assert {"session", "code", "authreq", "grant", "refresh", "registration-token"} <= kinds

    assert store.get_session("s1") is None
    assert store.get_code("c1") is None
    assert store.get_authorization_request("r1") is None
    assert store.get_grant("app", "g1") is None
    assert store.get_refresh_token("t1") is None
    assert store.get_registration_token("i1") is None
    with pytest.raises(ConditionFailed):
        store.consume_authorization_request("r1")


def test_item_becomes_absent_exactly_at_expiry(aws, monkeypatch):
    freeze_clock(monkeypatch)  # to the second: real time must not tick between put and read under load
    store = aws.store
    expires = clock.now() + 60
    store.put_session(SessionRecord("s2", "usr_1", clock.now(), expires))
    assert store.get_session("s2") is not None
    clock.travel(59)
    assert store.get_session("s2") is not None
    clock.travel(1)
    assert store.get_session("s2") is None


def test_expired_code_cannot_be_redeemed_even_by_a_direct_write(aws):
    store = aws.store
    code = CodeRecord("c3", "app", "https://c/cb", True, "usr_1", "read:analysis", None, "g3", 0, clock.now() + 60)
    store.put_code(code)
    clock.travel(61)
    grant = GrantRecord("g3", "app", "usr_1", "read:analysis", clock.now(), clock.now() + 999)
    with pytest.raises(ConditionFailed):
        store.redeem_code(code, grant, None)
    assert store.get_grant("app", "g3") is None
