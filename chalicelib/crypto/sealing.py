"""Sealing a value under a key derived from a token only its holder has (HKDF + AES-GCM).

Used for the refresh-token grace window: the rotated response is stored encrypted under a key
derived from the presented refresh token, so nothing usable rests in the table.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _key(token: str, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(token.encode())


def seal_with_token(token: str, purpose: str, plaintext: bytes) -> str:
    nonce = os.urandom(12)
    return base64.urlsafe_b64encode(nonce + AESGCM(_key(token, purpose)).encrypt(nonce, plaintext, None)).decode()


def open_with_token(token: str, purpose: str, sealed: str) -> bytes | None:
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        return AESGCM(_key(token, purpose)).decrypt(raw[:12], raw[12:], None)
    except (InvalidTag, ValueError):
        return None
