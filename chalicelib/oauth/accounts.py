"""Clipron accounts: creating users and checking passwords (with a brute-force limit)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Protocol

from chalicelib import audit
from chalicelib.crypto.passwords import hash_password, verify_password
from chalicelib.crypto.secrets import digest, new_id, new_token
from chalicelib.oauth.errors import InvalidRequest
from chalicelib.oauth.throttle import Limit, Reservation, Throttle, Throttled, source_of, subject_of
from chalicelib.records import AlreadyExists, UserRecord
from chalicelib.settings import Settings

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


class AccountStore(Protocol):
    def create_user(self, user: UserRecord) -> None: ...
    def get_user(self, user_id: str) -> UserRecord | None: ...
    def find_user_id(self, email: str) -> str | None: ...
    def remember_device(self, device_digest: str, user_id: str, expires_at: int) -> None: ...
    def device_user_id(self, device_digest: str) -> str | None: ...


MAX_NAME = 200


def normalise_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip().lower()


def create_user(
    store: AccountStore, email: str, password: str, now: int, name: str = "", email_verified: bool = False
) -> UserRecord:
    """A new account; `name` and `email_verified` are what OpenID Connect clients see (UserInfo)."""
    email = normalise_email(email)
    if not _EMAIL.match(email):
        raise InvalidRequest("that is not an email address")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidRequest(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise InvalidRequest(f"the name must have at most {MAX_NAME} characters")
    user = UserRecord(user_id=new_id("usr_"), email=email, password_hash=hash_password(password), created_at=now,
                      name=name, email_verified=email_verified, updated_at=now)
    try:
        store.create_user(user)
    except AlreadyExists:
        raise InvalidRequest("a user with that email already exists") from None
    return user


@dataclass(frozen=True)
class LoginLimits:
    """The login throttle (README "Throttling"): every attempt reserves a unit of each limit before the
    password is checked; a correct password gives them back, so only failures stay counted."""

    account_source: Limit  # one account from one source: the tight one, with exponential backoff
    source: Limit  # one source across every account (password spraying)
    account: Limit  # one account from every new device: looser, and a known device is exempt
    everything: Limit  # the global ceiling on failures (a distributed attack); known devices exempt
    backoff_max_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimits:
        window = settings.login_window_seconds
        return cls(
            Limit("login-account-source", settings.login_max_failures, window),
            Limit("login-source", settings.login_source_max_failures, window),
            Limit("login-account", settings.login_account_max_failures, window),
            Limit("login-global", settings.login_global_max_failures_per_minute, 60),
            settings.login_backoff_max_seconds,
        )


@dataclass(frozen=True)
class LoginAttempt:
    email: str
    password: str
    source: str  # the address the gateway saw (never a header the client sets)
    device_user_id: str | None = None  # whose known-device cookie the browser presented, if any


def authenticate(
    store: AccountStore, throttle: Throttle, limits: LoginLimits, attempt: LoginAttempt
) -> UserRecord | None:
    """The user when email and password match; None otherwise, with the same work either way.

    Raises Throttled before any password is checked once a limit is reached.
    """
    email = normalise_email(attempt.email)
    source = source_of(attempt.source)
    try:
        reservation, user_id = _reserve(store, throttle, limits, email, source, attempt.device_user_id)
    except Throttled as refused:
        audit.emit("login.throttled", limit=refused.scope)
        raise
    user = store.get_user(user_id) if user_id and len(attempt.password) <= MAX_PASSWORD else None
    ok = verify_password(attempt.password[:MAX_PASSWORD], user.password_hash if user else None)
    if ok and user is not None and not user.disabled:
        throttle.give_back(reservation)
        audit.emit("login.succeeded", user_id=user.user_id)
        return user
    reason = "disabled" if ok and user is not None else "password"
    audit.emit("login.failed", user_id=user.user_id if user is not None else None, reason=reason)
    return None


def _reserve(
    store: AccountStore, throttle: Throttle, limits: LoginLimits, email: str, source: str, device_user_id: str | None
) -> tuple[Reservation, str | None]:
    """One unit of every sign-in limit that applies (Throttled, nothing taken, when one is full), and the
    account's user id. A full account+source limit also strikes it: the next block lasts twice as long."""
    pair = subject_of(email, source)
    throttle.check_block(limits.account_source.scope, pair)
    user_id = store.find_user_id(email) if len(email) <= 320 else None
    known_device = user_id is not None and device_user_id == user_id
    wanted = [(limits.source, subject_of(source)), (limits.account_source, pair)]
    if not known_device:  # what a guesser cannot present: a browser this account signed in from before
        wanted += [(limits.account, subject_of(email)), (limits.everything, "all")]
    try:
        return throttle.take(*wanted), user_id
    except Throttled as refused:
        if refused.scope == limits.account_source.scope:
            raise throttle.strike(refused.scope, pair, limits.account_source.window_seconds,
                                  limits.backoff_max_seconds) from None
        raise


def known_device_user_id(store: AccountStore, device_id: str | None) -> str | None:
    """The account a browser's known-device cookie was issued to (None for none or an unknown value)."""
    if not device_id or len(device_id) > 128:
        return None
    return store.device_user_id(digest(device_id))


def remember_device(store: AccountStore, user_id: str, device_id: str | None, now: int, days: int) -> str | None:
    """After a successful sign-in: the device cookie value to set (a new one unless the browser's is
    already this account's), or None when known devices are switched off (KNOWN_DEVICE_DAYS=0)."""
    if days <= 0:
        return None
    if device_id is None or known_device_user_id(store, device_id) != user_id:
        device_id = new_token()
    store.remember_device(digest(device_id), user_id, now + days * 86400)
    return device_id
