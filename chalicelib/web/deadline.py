"""Starts each request's deadline (chalicelib/deadline.py), REQUEST_DEADLINE_SECONDS from its arrival."""

from __future__ import annotations

from typing import Callable

from chalice.app import Request, Response

from chalicelib import deadline
from chalicelib.wiring import services


def request_deadline(event: Request, get_response: Callable[[Request], Response]) -> Response:
    deadline.start(services().settings.request_deadline_seconds)
    try:
        return get_response(event)
    finally:
        deadline.clear()
