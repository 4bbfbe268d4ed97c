"""JSON from outside (request bodies, fetched documents), strictly: UTF-8, no member named twice,
bounded nesting, and only valid text (Unicode scalar values) in strings and member names."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 16  # client metadata, metadata documents and project bodies are two or three levels deep


class DuplicateMember(ValueError):
    """An object names one member twice (parsers disagree on which value wins: refuse both)."""


class NotText(ValueError):
    """A string or member name holds a lone surrogate (JSON's `\\ud800` escape): no page, log or UTF-8
    encoder can handle it later, so nothing like it is stored."""


def scalar_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _checked_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({name for name, _ in pairs}) != len(pairs):
        raise DuplicateMember("a member appears twice")
    if not all(scalar_text(name) and _valid_text(value) for name, value in pairs):
        raise NotText("not valid text")
    return dict(pairs)


def _valid_text(value: Any) -> bool:
    """Strings, also inside arrays (objects were checked as each one was built)."""
    if isinstance(value, str):
        return scalar_text(value)
    if isinstance(value, list):
        return all(_valid_text(item) for item in value)
    return True


def depth(text: str) -> int:
    """The deepest nesting of arrays and objects, counted without parsing (json.loads recurses: 1,500
    levels in under 3 KB is a RecursionError)."""
    level = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            deepest = max(deepest, level)
        elif ch in "]}":
            level -= 1
    return deepest


def loads(raw: bytes) -> Any:
    """The parsed value; ValueError (DuplicateMember, NotText or a plain one) for anything else."""
    text = raw.decode("utf-8", errors="strict")
    if depth(text) > MAX_DEPTH:
        raise ValueError("nested too deeply")
    value = json.loads(text, object_pairs_hook=_checked_object)
    if not _valid_text(value):
        raise NotText("not valid text")
    return value
