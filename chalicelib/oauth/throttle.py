"""Throttles and quotas: counters in fixed windows, shared by every Lambda instance through DynamoDB.

A throttle *reserves before it verifies*: `take` adds one to each counter with a conditional update
(refused, and nothing counted, once the counter is at its limit) before the caller checks a password
or a secret, so N parallel guesses never check more than the limit. What turns out not to count
(a correct password) is given back.

Keys (what the operator's `clear-throttle` deletes): every item of a throttle lives under the
partition `rate#<scope>:<subject>`, counters as `window#<n>` (n = epoch seconds // window), the
backoff block as `block`. A subject is `subject_of(value)`: the first 32 hex digits of SHA-256 of the
normalised value, so an email or address never sits in the table in the clear; several values
(account and source) are joined with ":" before hashing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable, Protocol

from chalicelib.crypto.secrets import digest
from chalicelib.records import CounterSlot

UNKNOWN_SOURCE = "unknown"


class ThrottleStore(Protocol):
    def take_slot(self, slot: CounterSlot) -> bool: ...
    def give_back_slot(self, slot: CounterSlot) -> None: ...
    def counter(self, slot: CounterSlot) -> int: ...
    def add_strike(self, key: str, backoff: Callable[[int], int], memory_seconds: int) -> int: ...
    def blocked_until(self, key: str) -> int | None: ...


@dataclass(frozen=True)
class Limit:
    """At most `max_count` per `window_seconds` for each subject of this `scope`."""

    scope: str
    max_count: int
    window_seconds: int

    def slot(self, subject: str) -> CounterSlot:
        return CounterSlot(throttle_key(self.scope, subject), self.window_seconds, self.max_count)


class Throttled(Exception):
    """A limit is reached: refuse (429) and say when to come back."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__("limit reached")  # fixed text; the scope is an attribute
        self.scope = scope
        self.retry_after = max(1, retry_after)


def subject_of(*values: str) -> str:
    """The stored name of a subject (an email, an address, a client id, or several joined)."""
    return digest(":".join(values))[:32]


def throttle_key(scope: str, subject: str) -> str:
    return f"{scope}:{subject}"


def source_of(address: str | None) -> str:
    """The source a throttle counts: an IPv4 address, or the /64 network of an IPv6 address (one
    subscriber usually holds a whole /64). `unknown` when the gateway gave nothing parseable."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return UNKNOWN_SOURCE
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Reservation:
    """The units one request took (given back when the attempt turns out not to count)."""

    slots: tuple[CounterSlot, ...]


class Throttle:
    def __init__(self, store: ThrottleStore, clock: Callable[[], int]) -> None:
        self.store = store
        self.clock = clock

    def take(self, *wanted: tuple[Limit, str]) -> Reservation:
        """One unit of each (limit, subject), or Throttled with none taken."""
        taken: list[CounterSlot] = []
        for limit, subject in wanted:
            slot = limit.slot(subject)
            if not self.store.take_slot(slot):
                self.give_back(Reservation(tuple(taken)))
                raise Throttled(limit.scope, self._window_left(limit))
            taken.append(slot)
        return Reservation(tuple(taken))

    def give_back(self, reservation: Reservation) -> None:
        for slot in reservation.slots:
            self.store.give_back_slot(slot)

    def refusal(self, limit: Limit) -> Throttled:
        return Throttled(limit.scope, self._window_left(limit))

    def check_block(self, scope: str, subject: str) -> None:
        """Throttled while an exponential-backoff block on (scope, subject) lasts."""
        until = self.store.blocked_until(throttle_key(scope, subject))
        if until is not None:
            raise Throttled(scope, until - self.clock())

    def strike(self, scope: str, subject: str, base_seconds: int, max_seconds: int) -> Throttled:
        """Block (scope, subject) for base, 2×base, 4×base … up to max_seconds on each further strike;
        strikes are remembered for max_seconds after the last one."""
        def backoff(strikes: int) -> int:
            return min(base_seconds * 2 ** min(strikes - 1, 30), max_seconds)

        until = self.store.add_strike(throttle_key(scope, subject), backoff, max_seconds)
        return Throttled(scope, until - self.clock())

    def _window_left(self, limit: Limit) -> int:
        return limit.window_seconds - self.clock() % limit.window_seconds

