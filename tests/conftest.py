"""Shared fixtures: moto in-process (serialised, as real DynamoDB is linearizable), the app, a clock."""

from __future__ import annotations

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
from moto import mock_aws  # noqa: E402
from moto.core.botocore_stubber import BotocoreStubber  # noqa: E402

from chalicelib import clock, wiring  # noqa: E402


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


@pytest.fixture
def aws():
    """A fresh moto account with the tables, the KMS key and the signing keys provisioned."""
    from chalicelib.provision import provision

    clock.reset()
    with mock_aws():
        wiring.reset()
        services = wiring.services()
        provision(services)
        yield services
        wiring.reset()
    clock.reset()


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
