"""JSON from outside (request bodies, fetched documents), strictly: UTF-8, no member named twice."""

from __future__ import annotations

import json
from typing import Any


class DuplicateMember(ValueError):
    """An object names one member twice (parsers disagree on which value wins: refuse both)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({name for name, _ in pairs}) != len(pairs):
        raise DuplicateMember("a member appears twice")
    return dict(pairs)


def loads(raw: bytes) -> Any:
    """The parsed value; ValueError (DuplicateMember for a doubled member) for anything else."""
    try:
        return json.loads(raw.decode("utf-8", errors="strict"), object_pairs_hook=_no_duplicates)
    except RecursionError:  # absurdly deep nesting is malformed input, not a server fault
        raise ValueError("nested too deeply") from None
