"""The embedded moto server of the local run, made fit for a day of use.

Two changes to moto's server, both applied only in the local run's process (never in Lambda):
- moto is not linearizable under threads (real DynamoDB is), so requests are serialised.
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
from typing import Any

_PATCHED = "_clipron_local_patch"


def serialize_moto_server() -> None:
    """moto is not linearizable under threads; real DynamoDB is. Serialise moto, not our code."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    original = DomainDispatcherApplication.__call__
    if getattr(original, _PATCHED, False):
        return
    lock = threading.RLock()

    def call(self: Any, environ: Any, start_response: Any) -> Any:
        with lock:
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


def start_moto(port: int) -> Any:
    """moto's threaded server (DynamoDB + KMS) on 127.0.0.1:port, serialised and with light transactions."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-call access log is noise here
    serialize_moto_server()
    lighten_transactions()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server
