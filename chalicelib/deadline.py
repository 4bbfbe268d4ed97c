"""A request-wide deadline: AWS calls that each stay within their own timeouts must not add up past
the Lambda's timeout and API Gateway's 29 s. Every request starts one (web/deadline.py); every
DynamoDB and KMS attempt, retries included, checks it before it is sent and, once it has passed,
fails as the store being unavailable: the client gets our spec-shaped 503, never a gateway 504.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from chalicelib.records import StoreUnavailable

monotonic: Callable[[], float] = time.monotonic  # tests replace it to make calls "slow" without sleeping
_state = threading.local()


class DeadlineExceeded(StoreUnavailable):
    """The request ran out of time before this AWS call: answer 503, the client may retry."""


def start(seconds: float) -> None:
    _state.at = monotonic() + seconds


def clear() -> None:
    _state.at = None


def check(**_: Any) -> None:
    at = getattr(_state, "at", None)
    if at is not None and monotonic() >= at:
        raise DeadlineExceeded("the request deadline passed before an AWS call")


def watch(client: Any) -> None:
    """Check the deadline before every attempt this botocore client sends (its retries included). Once per
    client however often it is called: the connection outlives a rebuilt wiring, and each extra copy
    of the hook would run on every call."""
    service = client.meta.service_model.endpoint_prefix
    client.meta.events.register_first(f"before-send.{service}", check, unique_id=f"clipron-deadline-{service}")
