"""Shared fixtures: moto in-process (serialised, as real DynamoDB is linearizable), the app, a clock."""

from __future__ import annotations

import contextlib
import copy
import os
import threading

# The environment must be set before the app is imported (chalice.test only patches it per request).
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "STAGE": "local",
        "ISSUER_URL": "http://127.0.0.1:8000",
    }
)
for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "OAUTH_TABLE", "API_TABLE", "KMS_KEY_ID"):
    os.environ.pop(_name, None)

import pytest  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from argon2.exceptions import InvalidHashError, VerificationError  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core.botocore_stubber import BotocoreStubber  # noqa: E402
from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: E402

from chalicelib import clock, wiring  # noqa: E402
from chalicelib.crypto import passwords  # noqa: E402


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
    Whatever else a test created (a table, a KMS key) is deleted; if a test's own `mock_aws()`
    wiped the backends, the world is provisioned again. Tables are found by name, never kept by
    reference: moto replaces them with copies when a transaction is cancelled.
    """

    def __init__(self) -> None:
        self.mock = mock_aws()
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
        self.mock.start(reset=False)
        try:
            wiring.reset()
            services = wiring.services()
            if self._intact(services.settings):
                self._reset()
            else:
                self._provision(services)
            yield services
        finally:
            wiring.reset()
            self.mock.stop(remove_data=False)
            clock.reset()


_world = MotoWorld()


@pytest.fixture
def aws():
    """A clean moto account with the tables, the KMS key and the signing keys provisioned."""
    with _world.session() as services:
        yield services


@pytest.fixture
def http(aws):
    """chalice.test's client: the same local gateway `chalice local` runs."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield client.http


@pytest.fixture
def clients(aws):
    """Revocation and introspection: confidential c1 and c2, public p1, resource server rs1."""
    from tests.lifecycle_helpers import make_client

    for client_id in ("c1", "c2"):
        make_client(aws, client_id)
    make_client(aws, "p1", public=True)
    make_client(aws, "rs1", resource_server=True)
    return aws


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Under xdist's loadgroup, keep a module whose fixtures are module-scoped (a local run, a
    browser, an example app: one per module) on one worker, so no worker starts it twice; every
    other test is spread one by one."""
    for item in items:
        definitions = getattr(item, "_fixtureinfo", None)
        scopes = {d.scope for defs in (definitions.name2fixturedefs.values() if definitions else ()) for d in defs}
        if scopes & {"module", "package", "class"}:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
