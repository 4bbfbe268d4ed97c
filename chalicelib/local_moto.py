"""The embedded moto server of the local run, made fit for a day of use.

Four changes to moto's server, all applied only in the local run's process (never in Lambda):
- moto is not linearizable under threads (real DynamoDB is), so requests are serialised.
- moto keeps every model object it ever creates in a class-level list (`instances_tracked`, for its
  dashboard): every DynamoDB item written, updated, copied or deleted stayed in memory, about four
  per code exchange. The local run does not track them.
- moto has no TTL: it keeps every expired item (used codes, parked requests) for ever. A sweeper does
  what DynamoDB's TTL does, so a day of use does not grow memory by items no read can return.
- moto's TransactWriteItems backs up every table it touches with `copy.deepcopy(table)` once per
  transaction item, so its cost grows with the table: a code exchange (one transaction) cost about
  10.5 MB and ~300 ms after a few thousand exchanges. We keep moto's transaction logic (conditions,
  cancellation reasons, one-operation-per-item checks) and replace only its rollback: the table is no
  longer copied; instead the items the transaction names are saved before it runs and put back if it
  fails. That is the same all-or-nothing result, at the cost of the items, not of the table.
"""

from __future__ import annotations

import copy
import threading
import types
from typing import Any, Iterable, Iterator

from chalicelib import clock

_PATCHED = "_clipron_local_patch"
_MOTO_LOCK = threading.RLock()  # one request at a time, and the TTL sweeper between them
TTL_SWEEP_SECONDS = 30.0


def serialize_moto_server() -> None:
    """moto is not linearizable under threads; real DynamoDB is. Serialise moto, not our code."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__
    if getattr(original, _PATCHED, False):
        return

    def call(self: Any, environ: Any, start_response: Any) -> Any:
        with _MOTO_LOCK:
            return original(self, environ, start_response)

    setattr(call, _PATCHED, True)
    DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]


def _no_table_copy(module_copy: types.ModuleType, table_type: type) -> types.SimpleNamespace:
    """moto's `copy` module, except that deep-copying a whole Table returns the table itself."""

    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, table_type) else module_copy.deepcopy(value, memo)

    return types.SimpleNamespace(deepcopy=deepcopy, copy=module_copy.copy)


def _item_key(backend: Any, operation: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The table name and primary key a transaction item writes or checks; None if moto will reject it."""
    table_name = operation.get("TableName")
    if not table_name or table_name not in backend.tables:
        return None
    table = backend.tables[table_name]
    if "Key" in operation:
        return table_name, operation["Key"]
    attrs = operation.get("Item") or {}
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    if not all(name in attrs for name in names):
        return None
    return table_name, {name: attrs[name] for name in names}


def _saved_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[str, dict, dict | None]]:
    """(table, key, attributes before the transaction or None) for every item the transaction names."""
    from moto.dynamodb.exceptions import MockValidationException

    saved = []
    for entry in transact_items:
        if len(entry) != 1:
            continue  # moto rejects it before writing anything for it
        located = _item_key(backend, next(iter(entry.values())))
        if located is None:
            continue
        table_name, key = located
        try:
            current = backend.get_item(table_name, key)
        except MockValidationException:  # a malformed key: moto rejects that item without writing it
            continue
        saved.append((table_name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
    return saved


def _restore(backend: Any, saved: list[tuple[str, dict, dict | None]]) -> None:
    for table_name, key, attributes in reversed(saved):
        if attributes is None:
            if backend.get_item(table_name, key) is not None:
                backend.delete_item(table_name, key)
        else:
            backend.put_item(table_name, attributes)


def lighten_transactions() -> None:
    """TransactWriteItems without moto's per-item whole-table deepcopy; rollback by saved items instead."""
    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    backend_type = models.DynamoDBBackend
    original = backend_type.transact_write_items
    if getattr(original, _PATCHED, False):
        return
    models.copy = _no_table_copy(copy, Table)  # type: ignore[assignment]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = _saved_items(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            _restore(self, saved)
            raise

    setattr(transact_write_items, _PATCHED, True)
    backend_type.transact_write_items = transact_write_items  # type: ignore[method-assign]


def stop_tracking_models() -> None:
    """moto's BaseModel appends every instance to its class's `instances_tracked` and never lets go (the
    /moto-api dashboard reads them); create models without that, and forget those tracked so far."""
    from moto.core.common_models import BaseModel
    from moto.core.model_instances import reset_model_data

    if getattr(BaseModel.__new__, _PATCHED, False):
        return

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    setattr(new, _PATCHED, True)
    BaseModel.__new__ = staticmethod(new)  # type: ignore[method-assign, assignment]
    reset_model_data()


def _items(table: Any) -> Iterator[Any]:
    for entry in list(table.items.values()):
        yield from (list(entry.values()) if table.range_key_attr else [entry])


def expire_items(backends: Iterable[Any], now: float) -> int:
    """DynamoDB's TTL, which moto lacks: delete every item whose TTL attribute (epoch seconds) has passed.

    DynamoDB does this within days and the store already ignores expired items on every read, so no
    answer changes; only the memory moto would otherwise keep for ever is freed. Returns how many went.
    """
    expired = 0
    for backend in backends:
        for table in list(backend.tables.values()):
            attribute = table.ttl.get("AttributeName") if table.ttl.get("TimeToLiveStatus") == "ENABLED" else None
            if attribute is None:
                continue
            for item in _items(table):
                ttl = item.attrs.get(attribute)
                if ttl is not None and ttl.type == "N" and float(ttl.value) < now:
                    table.delete_item(item.hash_key, item.range_key)
                    expired += 1
            if table.range_key_attr:  # moto leaves a partition behind when emptied or merely read
                for hash_key in [key for key, partition in table.items.items() if not partition]:
                    del table.items[hash_key]
    return expired


def _dynamodb_backends() -> list[Any]:
    from moto.dynamodb.models import dynamodb_backends

    # dict.values: moto's BackendDict would create a backend for every region on plain access
    return [backend for account in dict.values(dynamodb_backends) for backend in dict.values(account)]


def sweep_expired_items(interval: float = TTL_SWEEP_SECONDS) -> threading.Event:
    """Run `expire_items` every `interval` seconds between requests; set the returned event to stop."""
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(interval):
            with _MOTO_LOCK:
                expire_items(_dynamodb_backends(), clock.now())

    threading.Thread(target=sweep, name="moto-ttl-sweeper", daemon=True).start()
    return stop


def start_moto(port: int) -> Any:
    """moto's threaded server (DynamoDB + KMS) on 127.0.0.1:port: serialised, light transactions, TTL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-call access log is noise here
    serialize_moto_server()
    lighten_transactions()
    stop_tracking_models()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    sweep_expired_items()  # a daemon thread: it ends with the local run's process
    return server
