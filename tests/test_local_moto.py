"""The local run's moto: TransactWriteItems stays all-or-nothing and no longer copies the whole table;
expired items go, as DynamoDB's TTL makes them go; nothing keeps a deleted or replaced item alive.

The backend is driven directly (a private DynamoDBBackend, no HTTP), with the same patch the local run
applies (chalicelib.local_moto.lighten_transactions) and its TTL sweep (chalicelib.local_moto.expire_items).
"""

from __future__ import annotations

import gc
import tracemalloc
import weakref

import pytest
from moto.dynamodb.exceptions import MultipleTransactionsException, TransactionCanceledException
from moto.dynamodb.models import DynamoDBBackend

from chalicelib.local_moto import expire_items, lighten_transactions, stop_tracking_models

TABLE = "soak"


@pytest.fixture
def backend() -> DynamoDBBackend:
    lighten_transactions()
    dynamo = DynamoDBBackend("us-east-1", "123456789012")
    dynamo.create_table(TABLE, schema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk",
                        "KeyType": "RANGE"}], throughput=None, attr=[{"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"}], global_indexes=None, indexes=None,
                        streams=None, billing_mode="PAY_PER_REQUEST", sse_specification=None, tags=[],
                        deletion_protection_enabled=None, warm_throughput=None)
    return dynamo


def _key(pk: str) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": "A"}}


def _put(pk: str, **extra: str) -> dict:
    item = _key(pk) | {name: {"S": value} for name, value in extra.items()}
    return {"Put": {"TableName": TABLE, "Item": item}}


def _item(backend: DynamoDBBackend, pk: str) -> dict | None:
    found = backend.get_item(TABLE, _key(pk))
    return found.to_json()["Attributes"] if found else None


def _consume(pk: str) -> dict:
    return {"Update": {"TableName": TABLE, "Key": _key(pk), "UpdateExpression": "SET used = :yes",
                       "ConditionExpression": "attribute_not_exists(used)",
                       "ExpressionAttributeValues": {":yes": {"S": "yes"}}}}


def test_a_transaction_applies_every_item(backend):
    backend.put_item(TABLE, _put("code")["Put"]["Item"])
    backend.transact_write_items([_consume("code"), _put("token", owner="u1")])
    assert _item(backend, "code")["used"] == {"S": "yes"}
    assert _item(backend, "token")["owner"] == {"S": "u1"}


def test_a_cancelled_transaction_leaves_every_item_as_it_was(backend):
    backend.put_item(TABLE, _put("code", used="yes")["Put"]["Item"])
    backend.put_item(TABLE, _put("grant", state="live")["Put"]["Item"])
    before = {pk: _item(backend, pk) for pk in ("code", "grant")}
    # the new token and the grant's update come before and after the failing condition: both are undone
    items = [_put("token", owner="u1"),
             {"Update": {"TableName": TABLE, "Key": _key("grant"), "UpdateExpression": "SET #s = :gone",
                         "ExpressionAttributeNames": {"#s": "state"},
                         "ExpressionAttributeValues": {":gone": {"S": "revoked"}}}},
             _consume("code")]
    with pytest.raises(TransactionCanceledException) as cancelled:
        backend.transact_write_items(items)
    assert "ConditionalCheckFailed" in str(cancelled.value)
    assert _item(backend, "token") is None
    assert {pk: _item(backend, pk) for pk in ("code", "grant")} == before


def test_two_operations_on_one_item_are_rejected_and_undone(backend):
    with pytest.raises(MultipleTransactionsException):
        backend.transact_write_items([_put("token", owner="u1"), _put("token", owner="u2")])
    assert _item(backend, "token") is None


def test_a_transaction_costs_its_items_not_the_table(backend):
    """moto's own rollback deep-copied the whole table per item: ~10 MB per exchange at soak sizes."""
    for number in range(3000):
        backend.put_item(TABLE, _put(f"filler-{number}", payload="x" * 200)["Put"]["Item"])
    backend.put_item(TABLE, _put("code")["Put"]["Item"])
    tracemalloc.start()
    try:
        backend.transact_write_items([_consume("code"), _put("token", owner="u1")])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 512 * 1024, f"one two-item transaction allocated {peak} bytes"


def _ttl_put(backend: DynamoDBBackend, pk: str, ttl: int | None, sk: str = "A") -> None:
    item = {"pk": {"S": pk}, "sk": {"S": sk}} | ({"ttl": {"N": str(ttl)}} if ttl is not None else {})
    backend.put_item(TABLE, item)


def test_items_past_their_ttl_are_swept_and_nothing_else(backend):
    """moto has no TTL: without the sweep every used code of a day of use stayed in memory."""
    backend.update_time_to_live(TABLE, {"Enabled": True, "AttributeName": "ttl"})
    _ttl_put(backend, "used-code", 999)
    _ttl_put(backend, "parked", 999, sk="B")
    _ttl_put(backend, "parked", 2000, sk="C")
    _ttl_put(backend, "live-token", 1001)
    _ttl_put(backend, "user", None)
    assert expire_items([backend], now=1000) == 2
    assert _item(backend, "used-code") is None
    assert backend.get_item(TABLE, {"pk": {"S": "parked"}, "sk": {"S": "B"}}) is None
    assert backend.get_item(TABLE, {"pk": {"S": "parked"}, "sk": {"S": "C"}}) is not None
    assert _item(backend, "live-token") is not None and _item(backend, "user") is not None


def test_the_sweep_drops_the_empty_partitions_moto_leaves(backend):
    """moto's get_item on a missing key creates an empty partition that nothing ever removes."""
    backend.update_time_to_live(TABLE, {"Enabled": True, "AttributeName": "ttl"})
    _ttl_put(backend, "used-code", 999)
    assert _item(backend, "never-stored") is None
    expire_items([backend], now=1000)
    assert {key.value for key in backend.tables[TABLE].items} == set()


def test_no_sweep_where_ttl_is_not_enabled(backend):
    _ttl_put(backend, "kept", 1)
    assert expire_items([backend], now=1000) == 0
    assert _item(backend, "kept") is not None


def test_a_replaced_or_deleted_item_is_freed(backend):
    """moto's BaseModel kept every Item ever created in `Item.instances_tracked`: about four per code
    exchange in the local run (~6 KB), for ever, even with the stored items flat."""
    stop_tracking_models()
    backend.put_item(TABLE, _put("code", state="new")["Put"]["Item"])
    first = weakref.ref(backend.get_item(TABLE, _key("code")))
    backend.transact_write_items([_consume("code")])  # an update replaces the item with a new one
    second = weakref.ref(backend.get_item(TABLE, _key("code")))
    backend.delete_item(TABLE, _key("code"))
    gc.collect()
    assert first() is None and second() is None
