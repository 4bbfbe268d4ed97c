"""One structured JSON log line per request: never a body, a query string, a token or a header value."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

from chalice.app import Request, Response

from chalicelib import audit

log = logging.getLogger("clipron.oauth.access")
log.setLevel(logging.INFO)  # the Lambda runtime leaves the root logger at WARNING; these lines are the point


def request_id(request: Request) -> str:
    context = request.context or {}
    return str(context.get("requestId") or context.get("extendedRequestId") or "-")


def access_log(event: Request, get_response: Callable[[Request], Response]) -> Response:
    started = time.perf_counter()
    response = get_response(event)
    record: dict[str, Any] = {
        "request_id": request_id(event),
        "method": event.method,
        "route": (event.context or {}).get("resourcePath", event.path),
        "status": response.status_code,
        "ms": round((time.perf_counter() - started) * 1000, 2),
    }
    log.info(json.dumps(record, separators=(",", ":")))
    if response.status_code >= 500:  # the CloudWatch alarm on 5xx counts these (infra/template.py)
        audit.emit("http.server_error", route=record["route"], status=response.status_code)
    return response
