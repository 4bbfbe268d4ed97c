"""The worlds tests run in: moto provisioned once per process (reset per test), or MemoryStore with an
in-process KMS stand-in (no moto at all); and the memoised slow primitives both share.

Imported by conftest.py after it set the environment (the app reads it on first use).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
from typing import Any, Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber
from moto.dynamodb.models.dynamo_type import DynamoType

from chalicelib import clock, wiring
from chalicelib.crypto import passwords
from chalicelib.store.memory import MemoryStore


def _serialize_moto() -> None:
    """moto's in-process DynamoDB is not linearizable under threads; serialise moto, not our code."""
    original = BotocoreStubber.__call__
    if getattr(original, "_serialized", False):
        return
    lock = threading.RLock()

    def call(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)

    call._serialized = True
    BotocoreStubber.__call__ = call


_serialize_moto()
KEYRING = DynamoType({"S": "keyring"})  # the signing keys' partition


class _RememberingHasher(PasswordHasher):
    """argon2id is slow by design (64 MiB, 3 passes: 0.1-1 s a call) and the tests hash and verify
    the same few passwords hundreds of times. Same inputs, same answer: remember it, per process.
    The local-run subprocesses (browser and example-app tests) still pay the full cost."""

    def __init__(self) -> None:
        super().__init__()
        self._hashes: dict[str | bytes, str] = {}
        self._verdicts: dict[tuple[str | bytes, str | bytes], tuple[type[Exception], tuple] | None] = {}

    def hash(self, password, *, salt=None):
        if salt is not None:
            return super().hash(password, salt=salt)
        if password not in self._hashes:
            self._hashes[password] = super().hash(password)
        return self._hashes[password]

    def verify(self, hash, password):
        key = (hash, password)
        if key not in self._verdicts:
            try:
                super().verify(hash, password)
                self._verdicts[key] = None
            except (VerificationError, InvalidHashError) as error:
                self._verdicts[key] = (type(error), error.args)
        verdict = self._verdicts[key]
        if verdict is not None:
            raise verdict[0](*verdict[1])
        return True


passwords._hasher = _RememberingHasher()


def _remember_private_keys() -> None:
    """Loading an RSA private key checks it (tens of ms); every test's fresh KeyRing loads the same
    provisioned signing keys after its own KMS Decrypt. Same PEM, same key object: remember it."""
    from cryptography.hazmat.primitives import serialization

    original = serialization.load_pem_private_key
    loaded: dict[tuple, object] = {}

    def load(data, password=None, backend=None, *, unsafe_skip_rsa_key_validation=False):
        skip = unsafe_skip_rsa_key_validation
        key = (bytes(data), password, skip)
        if key not in loaded:
            loaded[key] = original(data, password, backend, unsafe_skip_rsa_key_validation=skip)
        return loaded[key]

    serialization.load_pem_private_key = load


_remember_private_keys()


class MotoWorld:
    """This process's provisioned moto account, kept between tests: only the items are reset.

    Provisioning (two tables, a KMS key and two RSA signing keys, with moto generating its own RSA
    key per KMS key) costs about a second; doing it once per process (per xdist worker) and then
    emptying the tables before each test gives every test the same clean world for a few ms. The
    signing-key items are put back as provisioned, so a test that rotates keys gets a clean ring.
    Whatever else a test created (a table, a KMS key) is deleted. A test's own `mock_aws()` nests in
    the world's mock and resets nothing; if one ran before the world's first test and wiped the
    backends, the world is provisioned again. Tables are found by name, never kept by
    reference: moto replaces them with copies when a transaction is cancelled.
    """

    def __init__(self) -> None:
        self.mock = mock_aws()
        self.mock_started = False
        self.kms_client: Any = None  # one botocore client for every test (each build costs ~15 ms)
        self.kms_keys: set[str] = set()
        self.keyring_items: dict[str, dict] = {}  # table name -> the keyring partition's items

    @staticmethod
    def _backends():
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends
        from moto.kms.models import kms_backends

        region = os.environ["AWS_DEFAULT_REGION"]
        return dynamodb_backends[DEFAULT_ACCOUNT_ID][region], kms_backends[DEFAULT_ACCOUNT_ID][region]

    def _intact(self, settings) -> bool:
        dynamodb, kms = self._backends()
        names = {settings.table_name, settings.api_table_name}
        return names == set(self.keyring_items) <= set(dynamodb.tables) and self.kms_keys <= set(kms.keys)

    def _provision(self, services) -> None:
        from chalicelib.provision import provision

        dynamodb, kms = self._backends()
        for table in dynamodb.tables.values():
            table.items.clear()
        provision(services)
        self.kms_keys = set(kms.keys)
        names = (services.settings.table_name, services.settings.api_table_name)
        self.keyring_items = {name: copy.deepcopy(dict(dynamodb.tables[name].items.get(KEYRING, {}))) for name in names}

    def _reset(self) -> None:
        dynamodb, kms = self._backends()
        for name in set(dynamodb.tables) - set(self.keyring_items):
            del dynamodb.tables[name]
        for key_id in set(kms.keys) - self.kms_keys:
            kms.delete_key(key_id)
        for name, keyring in self.keyring_items.items():
            items = dynamodb.tables[name].items
            items.clear()
            if keyring:
                items[KEYRING] = copy.deepcopy(keyring)

    @contextlib.contextmanager
    def session(self):
        """Services on a clean world, for one test."""
        clock.reset()
        self._start_mock()
        try:
            wiring.reset()
            services = wiring.services()
            if self.kms_client is None:
                self.kms_client = services.kms()
            services._kms = self.kms_client
            if self._intact(services.settings):
                self._reset()
            else:
                self._provision(services)
            yield services
        finally:
            wiring.reset()
            clock.reset()

    def _start_mock(self) -> None:
        """moto's mock is started once per process and left on. Each start registers ~1,300 URL patterns
        with `responses` (about 20 ms) and, without a reset, none is ever removed: started per test, the
        registry grew by that much for every test. MemoryStore tests still fail on any AWS call (MemoryWorld)."""
        if not self.mock_started:
            self.mock.start(reset=False)
            self.mock_started = True




def _context(context: dict[str, str] | None) -> bytes:
    return json.dumps(context or {}, sort_keys=True, separators=(",", ":")).encode()


class LocalKms:
    """KMS GenerateDataKey and Decrypt in process, for MemoryStore tests. Each data key is wrapped with
    AES-GCM under one key per process, the encryption context as associated data, so opening under
    another context fails as KMS's Decrypt does (InvalidCiphertextException)."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._wrap = AESGCM(AESGCM.generate_key(bit_length=256))

    def generate_data_key(self, *, KeyId: str, EncryptionContext: dict[str, str] | None = None,
                          **_: Any) -> dict[str, Any]:
        plaintext, nonce = os.urandom(32), os.urandom(12)
        blob = nonce + self._wrap.encrypt(nonce, plaintext, _context(EncryptionContext))
        return {"KeyId": KeyId, "Plaintext": plaintext, "CiphertextBlob": blob}

    def decrypt(self, *, CiphertextBlob: bytes, EncryptionContext: dict[str, str] | None = None,
                **_: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError
        from cryptography.exceptions import InvalidTag

        try:
            plaintext = self._wrap.decrypt(CiphertextBlob[:12], CiphertextBlob[12:], _context(EncryptionContext))
        except InvalidTag:
            error = {"Error": {"Code": "InvalidCiphertextException", "Message": "cannot decrypt"}}
            raise ClientError(error, "Decrypt") from None
        return {"Plaintext": plaintext}


def _no_aws(*_: Any, **__: Any) -> Any:
    raise AssertionError('a store("memory") test made an AWS call: mark it store("dynamo") if it needs one')


class MemoryWorld:
    """The same services on MemoryStore and LocalKms: wiring builds them as usual, on a MemoryStore
    instead of DynamoDB. The two signing keys are generated once per process and put back in each
    test's fresh store (a test that rotates keys changes only its own store)."""

    def __init__(self) -> None:
        self.kms: LocalKms | None = None
        self.signing_keys: list = []

    @contextlib.contextmanager
    def session(self, monkeypatch: Any) -> Iterator[Any]:
        import botocore.endpoint

        clock.reset()
        store = MemoryStore(clock.now)
        monkeypatch.setattr(wiring, "DynamoStore", lambda *_, **__: store)
        monkeypatch.setattr(wiring, "bind_models", lambda *_, **__: None)
        monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", _no_aws)
        wiring.reset()
        try:
            services = wiring.services()
            if self.kms is None:
                self.kms = LocalKms()
            services._kms = self.kms
            if not self.signing_keys:
                services.keyring.ensure()
                self.signing_keys = store.list_signing_keys()
            for record in copy.deepcopy(self.signing_keys):
                store.put_signing_key(record)
            services.keyring.invalidate()
            yield services
        finally:
            wiring.reset()
            clock.reset()


def reconfigured(services: Any, **changes: Any) -> Any:
    """The same world served with other settings: the composition root is rebuilt, as a redeploy would
    (services read their settings once, when wiring builds them)."""
    import dataclasses

    rebuilt = wiring.build(dataclasses.replace(services.settings, **changes))
    rebuilt._kms = services._kms  # the world's KMS (moto's, or the in-process stand-in)
    wiring.serve(rebuilt)
    return rebuilt
