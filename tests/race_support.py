"""Races: run actions at the same instant and collect what each one did."""

from __future__ import annotations

import threading
from typing import Any, Callable


def all_at_once(*actions: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """Run every action in its own thread, released together by a barrier so they hit the same window;
    each one's result, or the exception it raised, in the order of `actions`."""
    barrier = threading.Barrier(len(actions))
    outcomes: list[Any] = [None] * len(actions)

    def run(index: int, action: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            outcomes[index] = action()
        except Exception as error:  # noqa: BLE001 - the caller asserts on what each action did
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i, action)) for i, action in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return outcomes
