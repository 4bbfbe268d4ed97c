"""Clipron accounts: creating users and checking passwords (with a brute-force limit)."""

from __future__ import annotations

import re
import unicodedata
from typing import Protocol

from chalicelib import audit
from chalicelib.crypto.passwords import hash_password, verify_password
from chalicelib.crypto.secrets import digest, new_id
from chalicelib.oauth.errors import InvalidRequest
from chalicelib.records import AlreadyExists, UserRecord

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


class AccountStore(Protocol):
    def create_user(self, user: UserRecord) -> None: ...
    def get_user(self, user_id: str) -> UserRecord | None: ...
    def find_user_id(self, email: str) -> str | None: ...
    def count_attempt(self, key: str, window_seconds: int) -> int: ...
    def attempts(self, key: str, window_seconds: int) -> int: ...


class LoginThrottled(Exception):
    """Too many failed logins for this account in the window."""


def normalise_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip().lower()


def create_user(store: AccountStore, email: str, password: str, now: int) -> UserRecord:
    email = normalise_email(email)
    if not _EMAIL.match(email):
        raise InvalidRequest("that is not an email address")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    user = UserRecord(user_id=new_id("usr_"), email=email, password_hash=hash_password(password), created_at=now)
    try:
        store.create_user(user)
    except AlreadyExists:
        raise InvalidRequest("a user with that email already exists") from None
    return user


def authenticate(
    store: AccountStore, email: str, password: str, max_failures: int, window_seconds: int
) -> UserRecord | None:
    """The user when email and password match; None otherwise, with the same work either way."""
    email = normalise_email(email)
    if len(email) > 320 or len(password) > MAX_PASSWORD:
        verify_password(password[:MAX_PASSWORD], None)
        return None
    throttle_key = "login:" + digest(email)
    if store.attempts(throttle_key, window_seconds) >= max_failures:
        audit.emit("login.throttled", limit="account")
        raise LoginThrottled()
    user_id = store.find_user_id(email)
    user = store.get_user(user_id) if user_id else None
    ok = verify_password(password, user.password_hash if user else None)
    if ok and user is not None and not user.disabled:
        audit.emit("login.succeeded", user_id=user.user_id)
        return user
    store.count_attempt(throttle_key, window_seconds)
    reason = "disabled" if ok and user is not None else "password"
    audit.emit("login.failed", user_id=user.user_id if user is not None else None, reason=reason)
    return None
