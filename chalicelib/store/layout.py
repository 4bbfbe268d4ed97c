"""The item layout both stores share (DynamoStore and its in-memory twin): which record fields are
top-level attributes of an item, so conditions and TTL can test them, and how a record comes back
from an item's JSON `data` and those attributes."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from chalicelib.records import ClientRecord, ClientSecret, live

NUMBERS = ("expires_at", "used_at", "revoked_at")
TOP_LEVEL = (*NUMBERS, "successor_digest", "grace_response", "disabled", "generation")


def split(record: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(data, top-level fields) of a record, as an item holds them."""
    data = dataclasses.asdict(record)
    return data, {name: data.pop(name) for name in TOP_LEVEL if name in data}


def rebuild[R](cls: Callable[..., R], data: Mapping[str, Any], top: Mapping[str, Any], now: int | None) -> R | None:
    """The record of an item; None when `now` is given and the item has expired.

    A member the record no longer has (renamed or dropped since the item was written) is ignored; a
    top-level field that is absent or None leaves the value in `data` (an item written before the field
    moved to the top level)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {name: value for name, value in data.items() if name in names}
    for name in TOP_LEVEL:
        if name in names and name in top:
            value = top[name]
            if value is None and values.get(name) is not None:
                continue
            values[name] = int(value) if value is not None and name in NUMBERS else value
    if now is not None and not live(values.get("expires_at"), now):
        return None
    record = cls(**values)
    if isinstance(record, ClientRecord):  # secrets come back from JSON as dicts
        record.secrets = [ClientSecret(**s) if isinstance(s, dict) else s for s in record.secrets]
    return record
