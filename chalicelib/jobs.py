"""Scheduled jobs. Each gets its own Lambda function (and, with autogen_policy false, its own IAM role).

rotate_signing_keys runs KeyRing.rotate, the same call as `python -m chalicelib.cli rotate-keys`:
next -> current, current -> retired, a fresh next, and keys retired longer than the longest
access-token lifetime plus the JWKS cache margin are dropped. Rotating needs no redeploy: the API
function reads the ring from the table (cached `KEY_CACHE_SECONDS`) and keeps verifying tokens
signed with the retired key while it is still published.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from chalice import Blueprint, Rate

from chalicelib import audit, clock, wiring
from chalicelib.crypto.keyring import NEXT
from chalicelib.settings import key_rotation_days

# KEY_ROTATION_DAYS (default 30) in the stage's environment_variables; the schedule is infrastructure,
# so a change takes a deploy. The next key is published a whole period before it signs.
ROTATION_DAYS = key_rotation_days()
ROTATION_FUNCTION = "rotate_signing_keys"
# EventBridge delivers at least once: a duplicate run must not promote a `next` key that clients'
# JWKS caches have not seen yet (a day, or half the period when that is shorter, so a slightly early
# tick of a daily schedule still rotates). The operator's `rotate-keys` has no such floor.
MIN_NEXT_KEY_AGE_SECONDS = min(86400, ROTATION_DAYS * 86400 // 2)

bp = Blueprint(__name__)
log = logging.getLogger("clipron.oauth.jobs")
log.setLevel(logging.INFO)  # the Lambda runtime's root logger stops at WARNING


@bp.schedule(Rate(ROTATION_DAYS, unit=Rate.DAYS), name=ROTATION_FUNCTION)
def rotate_signing_keys(event: Any) -> dict[str, Any]:
    """Rotate the signing keys; logs and returns key ids only (never key material)."""
    keyring = wiring.services().keyring
    nexts = [record.created_at for record in keyring.store.list_signing_keys() if record.status == NEXT]
    if nexts and clock.now() - min(nexts) < MIN_NEXT_KEY_AGE_SECONDS:
        result: dict[str, Any] = {"skipped": "the next key was published less than a day ago"}
    else:
        result = keyring.rotate()
        audit.emit("keys.rotated", **result, via="schedule")
    log.info(json.dumps({"job": ROTATION_FUNCTION, **result}, separators=(",", ":")))
    return result
