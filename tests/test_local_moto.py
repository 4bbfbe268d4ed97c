"""The local run's moto: TransactWriteItems stays all-or-nothing and no longer copies the whole table.

The backend is driven directly (a private DynamoDBBackend, no HTTP), with the same patch the local run
applies (chalicelib.local_moto.lighten_transactions).
"""

from __future__ import annotations

import tracemalloc

import pytest
from moto.dynamodb.exceptions import MultipleTransactionsException, TransactionCanceledException
from moto.dynamodb.models import DynamoDBBackend

from chalicelib.local_moto import lighten_transactions

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
