"""The one clock every layer reads, so tests can move time without patching each module."""

import time

_offset = 0


def now() -> int:
    """Seconds since the epoch, as stored in DynamoDB (TTL attributes are epoch seconds)."""
    return int(time.time()) + _offset


def travel(seconds: int) -> None:
    """Move this process's clock (tests: expiry without sleeping; moto never expires items anyway)."""
    global _offset
    _offset += seconds


def reset() -> None:
    global _offset
    _offset = 0
