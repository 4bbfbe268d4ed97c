"""Security events: one JSON line each on the `clipron.audit` logger, stable names and fields, no secrets.

    {"audit":"refresh.reuse_detected","ts":1790000000,"client_id":"app_…","user_id":"usr_…","grant_id":"…"}

Every layer may emit (like `clock`). The catalogue below is the contract: dashboards and the
CloudWatch metric filters of infra/template.py match on the names, so a name never changes meaning;
`emit` refuses a name or a field outside it. Fields are identifiers and outcomes only: never a token,
code, secret, password, session id, email or request text.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from chalicelib import clock

log = logging.getLogger("clipron.audit")
log.setLevel(logging.INFO)  # the Lambda runtime leaves the root logger at WARNING

# name -> the fields it may carry (README "Audit events" lists the same)
EVENTS: dict[str, tuple[str, ...]] = {
    "login.succeeded": ("user_id",),
    "login.failed": ("user_id", "reason"),  # user_id only when the account exists; reason: password | disabled
    "login.throttled": ("limit",),  # which limit refused: the throttle decides (harden-a)
    "consent.granted": ("user_id", "client_id", "scope"),
    "consent.withdrawn": ("user_id", "client_id", "grants"),
    "code.issued": ("user_id", "client_id", "grant_id"),
    "code.redeemed": ("user_id", "client_id", "grant_id"),
    "code.replayed": ("user_id", "client_id", "grant_id"),  # a used code again: its grant is revoked
    "refresh.rotated": ("user_id", "client_id", "grant_id"),
    "refresh.reuse_detected": ("user_id", "client_id", "grant_id"),  # a rotated token again: grant revoked
    "token.revoked": ("client_id", "grant_id", "token_type"),
    "client_auth.throttled": ("client_id",),
    "client.created": ("client_id", "owner_id", "via"),  # via: developer | register | open | operator
    "client.updated": ("client_id", "via"),
    "client.secret_rotated": ("client_id", "via"),
    "client.deleted": ("client_id", "via", "grants"),
    "registration.by_token": ("client_id",),  # POST /register with an initial access token
    "keys.rotated": ("current", "next", "retired", "removed", "via"),  # via: schedule | operator
    "http.server_error": ("route", "status"),
}
THROTTLE_EVENTS = ("login.throttled", "client_auth.throttled")


def emit(event: str, **fields: Any) -> None:
    """Log one security event. Unknown names or fields are a programming error, caught by the tests."""
    allowed = EVENTS.get(event)
    if allowed is None or not set(fields) <= set(allowed):
        raise ValueError(f"unknown audit event or field: {event} {sorted(fields)}")
    record = {"audit": event, "ts": clock.now(), **{k: v for k, v in fields.items() if v is not None}}
    log.info(json.dumps(record, separators=(",", ":"), ensure_ascii=True))
