"""The signing-key ring: RS256 keys whose private halves rest only as KMS envelopes.

Statuses: `next` (published, not yet signing), `current` (signing), `retired` (published until
every token it signed has expired, then removed). The public halves are read from the table and
cached per process for `key_cache_seconds`; a private half is decrypted once per process and kid.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, Callable, Protocol

from chalicelib.crypto.secrets import new_id
from chalicelib.records import SigningKeyRecord
from chalicelib.settings import Settings

if TYPE_CHECKING:  # PyJWT and cryptography load on first use: JWKS needs neither (cold start)
    from cryptography.hazmat.primitives.asymmetric import rsa

    from chalicelib.crypto.envelope import Envelope
ALGORITHM = "RS256"
RSA_BITS = 2048
NEXT, CURRENT, RETIRED = "next", "current", "retired"
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k", "oth")
# a retired key stays published this long beyond the longest token lifetime (JWKS caches)
JWKS_CACHE_MARGIN_SECONDS = 600


class KeyStore(Protocol):
    def list_signing_keys(self) -> list[SigningKeyRecord]: ...
    def put_signing_key(self, key: SigningKeyRecord) -> None: ...
    def delete_signing_key(self, kid: str) -> None: ...


class NoSigningKey(Exception):
    """The ring has no current key (run `provision` or `rotate-keys`)."""


def envelope_context(kid: str) -> dict[str, str]:
    return {"purpose": "clipron-oauth-signing-key", "kid": kid}


class KeyRing:
    def __init__(
        self, store: KeyStore, envelope_factory: Callable[[], Envelope], settings: Settings, clock: Callable[[], int]
    ) -> None:
        self.store = store
        self.envelope_factory = envelope_factory  # lazy: JWKS and verification never need KMS
        self.clock = clock
        self.cache_seconds = settings.key_cache_seconds
        longest_token = max(settings.access_token_seconds, settings.id_token_seconds)
        self.publish_retired_seconds = longest_token + JWKS_CACHE_MARGIN_SECONDS
        self._lock = threading.Lock()
        self._opening = threading.Lock()
        self._records: list[SigningKeyRecord] | None = None
        self._loaded_at = 0
        self._public: dict[str, Any] = {}
        self._private: dict[str, rsa.RSAPrivateKey] = {}

    # -- reading --
    def records(self) -> list[SigningKeyRecord]:
        now = self.clock()
        with self._lock:
            if self._records is None or now - self._loaded_at >= self.cache_seconds:
                self._records = self.store.list_signing_keys()
                self._loaded_at = now
                self._public = {r.kid: r.public_jwk for r in self._published(self._records, now)}
            return self._records

    def invalidate(self) -> None:
        with self._lock:
            self._records = None

    def _published(self, records: list[SigningKeyRecord], now: int) -> list[SigningKeyRecord]:
        return [
            r
            for r in records
            if r.status in (NEXT, CURRENT)
            or (r.retired_at is not None and now < r.retired_at + self.publish_retired_seconds)
        ]

    def jwks(self) -> dict[str, Any]:
        records = self._published(self.records(), self.clock())
        order = {CURRENT: 0, NEXT: 1, RETIRED: 2}
        return {"keys": [r.public_jwk for r in sorted(records, key=lambda r: (order[r.status], -r.created_at))]}

    def public_key(self, kid: str) -> Any | None:
        """The verification key for a kid: a dictionary lookup in the published ring, nothing else."""
        from jwt.algorithms import RSAAlgorithm

        self.records()
        with self._lock:
            key = self._public.get(kid)
            if isinstance(key, dict):  # parsed once per key and process
                key = self._public[kid] = RSAAlgorithm.from_jwk(json.dumps(key))
            return key

    def current(self) -> SigningKeyRecord:
        currents = [r for r in self.records() if r.status == CURRENT]
        if not currents:
            raise NoSigningKey("no current signing key: run `provision` or `rotate-keys`")
        return max(currents, key=lambda r: r.created_at)

    def _private_key(self, record: SigningKeyRecord) -> rsa.RSAPrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = self._private.get(record.kid)
        if key is None:
            with self._opening:  # requests signing at once (the threaded local run) open it once: one Decrypt
                key = self._private.get(record.kid)
                if key is None:
                    pem = self.envelope_factory().open(record.private_envelope, envelope_context(record.kid))
                    loaded = serialization.load_pem_private_key(pem, password=None)
                    assert isinstance(loaded, rsa.RSAPrivateKey)
                    key = self._private[record.kid] = loaded
        return key

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        import jwt

        record = self.current()
        headers = {"kid": record.kid, "typ": typ}
        return jwt.encode(claims, self._private_key(record), algorithm=ALGORITHM, headers=headers)

    # -- changing (operator commands and the scheduled rotation) --
    def create_key(self, status: str) -> SigningKeyRecord:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import RSAAlgorithm

        private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        kid = new_id()
        public_jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
        public_jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
        assert not any(member in public_jwk for member in _PRIVATE_JWK_MEMBERS)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        record = SigningKeyRecord(
            kid=kid,
            status=status,
            alg=ALGORITHM,
            public_jwk=public_jwk,
            private_envelope=self.envelope_factory().seal(pem, envelope_context(kid)),
            created_at=self.clock(),
        )
        self.store.put_signing_key(record)
        self.invalidate()
        return record

    def ensure(self) -> list[str]:
        """Make sure a current and a next key exist (idempotent). Returns what it created."""
        records = self.store.list_signing_keys()
        created = []
        if not any(r.status == CURRENT for r in records):
            created.append(f"current {self.create_key(CURRENT).kid}")
        if not any(r.status == NEXT for r in records):
            created.append(f"next {self.create_key(NEXT).kid}")
        return created

    def rotate(self) -> dict[str, Any]:
        """Promote next to current, retire the old current, create a new next, drop long-retired keys."""
        now = self.clock()
        records = self.store.list_signing_keys()
        nexts = sorted((r for r in records if r.status == NEXT), key=lambda r: r.created_at)
        promoted = nexts[0] if nexts else self.create_key(NEXT)
        retired = []
        for record in records:
            if record.status == CURRENT:
                record.status, record.retired_at = RETIRED, now
                self.store.put_signing_key(record)
                retired.append(record.kid)
        promoted.status = CURRENT
        self.store.put_signing_key(promoted)
        new_next = self.create_key(NEXT)
        removed = []
        for record in records:
            if record.status == RETIRED and record.retired_at is not None and record.kid not in retired:
                if now >= record.retired_at + self.publish_retired_seconds:
                    self.store.delete_signing_key(record.kid)
                    removed.append(record.kid)
        self.invalidate()
        return {"current": promoted.kid, "next": new_next.kid, "retired": retired, "removed": removed}
