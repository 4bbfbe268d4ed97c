"""KMS envelope encryption: a fresh data key per secret, AES-256-GCM, an encryption context.

The context (e.g. {"purpose": "signing-key", "kid": ...}) is bound twice: KMS refuses to decrypt
the data key under another context, and AES-GCM authenticates the same context as associated data.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError


class KmsClient(Protocol):
    def generate_data_key(self, **kwargs: Any) -> dict[str, Any]: ...
    def decrypt(self, **kwargs: Any) -> dict[str, Any]: ...


class _NoPlaintextInLogs(logging.Filter):
    """botocore logs every response body at DEBUG: for KMS GenerateDataKey and Decrypt that is the data
    key in the clear, which opens the signing keys. Those bodies are redacted before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if any(b'"Plaintext"' in arg for arg in record.args or () if isinstance(arg, (bytes, bytearray))):
            record.args = ("<KMS response redacted: it carries a plaintext data key>",)
        return True


logging.getLogger("botocore.parsers").addFilter(_NoPlaintextInLogs())


class EnvelopeError(Exception):
    """The envelope cannot be opened (KMS refused or failed, or the ciphertext was tampered with)."""


def _aad(context: dict[str, str]) -> bytes:
    return json.dumps(context, sort_keys=True, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Envelope:
    def __init__(self, kms: KmsClient, key_id: str) -> None:
        self.kms = kms
        self.key_id = key_id

    def seal(self, plaintext: bytes, context: dict[str, str]) -> dict[str, str]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # lazily: cold start

        try:
            data_key = self.kms.generate_data_key(KeyId=self.key_id, KeySpec="AES_256", EncryptionContext=context)
        except (BotoCoreError, ClientError) as error:
            raise EnvelopeError(f"KMS GenerateDataKey failed: {type(error).__name__}") from None
        nonce = os.urandom(12)
        ciphertext = AESGCM(data_key["Plaintext"]).encrypt(nonce, plaintext, _aad(context))
        return {
            "encrypted_data_key": _b64(data_key["CiphertextBlob"]),
            "nonce": _b64(nonce),
            "ciphertext": _b64(ciphertext),
        }

    def open(self, envelope: dict[str, str], context: dict[str, str]) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            data_key = self.kms.decrypt(
                CiphertextBlob=base64.b64decode(envelope["encrypted_data_key"]), EncryptionContext=context
            )
            return AESGCM(data_key["Plaintext"]).decrypt(
                base64.b64decode(envelope["nonce"]), base64.b64decode(envelope["ciphertext"]), _aad(context)
            )
        except (BotoCoreError, ClientError) as error:
            code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
            raise EnvelopeError(f"KMS Decrypt failed: {code}") from None
        except (InvalidTag, KeyError, ValueError):
            raise EnvelopeError("the envelope is malformed or was tampered with") from None
