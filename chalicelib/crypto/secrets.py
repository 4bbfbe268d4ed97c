"""Random tokens, their digests, and constant-time comparison."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_token() -> str:
    """256 bits of randomness, URL-safe (codes, refresh tokens, session ids, client secrets)."""
    return secrets.token_urlsafe(32)


def new_id(prefix: str = "") -> str:
    """A public identifier (client ids, user ids, grant ids): 128 bits, URL-safe."""
    return prefix + secrets.token_urlsafe(16)


def digest(value: str) -> str:
    """The SHA-256 digest under which a secret is stored. A fast hash suits 256-bit random secrets."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two digests (never `==` on secrets)."""
    return hmac.compare_digest(a.encode(), b.encode())


def secret_matches(presented: str, stored_digest: str) -> bool:
    """Whether a presented secret hashes to a stored digest, compared in constant time."""
    return digests_equal(digest(presented), stored_digest)


def derived_token(secret: str, purpose: str) -> str:
    """A token derived from a secret only its holder knows (CSRF tokens from a session id)."""
    mac = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
