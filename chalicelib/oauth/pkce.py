"""PKCE (RFC 7636), S256 only: the challenge's format at /authorize, the verifier's check at /token."""

from __future__ import annotations

import base64
import hashlib
import re

from chalicelib.crypto.secrets import digests_equal

METHOD = "S256"
# code-verifier = 43*128unreserved (RFC 7636 §4.1); an S256 challenge is 43 base64url characters
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # fullmatch: `$` would let a trailing newline in
_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")


def valid_challenge(challenge: str) -> bool:
    return bool(_CHALLENGE.fullmatch(challenge))


def valid_verifier(verifier: str) -> bool:
    return bool(_VERIFIER.fullmatch(verifier))


def s256(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(code_verifier))) without padding (RFC 7636 §4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def verifier_matches(verifier: str, challenge: str) -> bool:
    """Whether a syntactically valid verifier hashes to the challenge, compared in constant time."""
    return valid_verifier(verifier) and digests_equal(s256(verifier), challenge)
