"""argon2id password hashing. Verification always runs a hash, so unknown users cost the same time."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("clipron-dummy-password-for-unknown-users")


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when the password matches; with no hash (unknown user) a dummy hash is still verified."""
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
