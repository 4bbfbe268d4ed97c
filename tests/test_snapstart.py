"""SnapStart hooks: a restored snapshot holds no decrypted key, no cached records, no AWS connection."""

from __future__ import annotations

import random
import sys
import types

from chalicelib import snapstart, wiring
from chalicelib.store import dynamo
from tests.token_helpers import basic, make_world, post_token


def client_credentials_token(http, aws) -> None:
    machine = make_world(aws).clients["CC1"]
    response = post_token(http, {"grant_type": "client_credentials"}, basic(machine.client_id, machine.secret))
    assert response.status_code == 200, response.body


def _warm_instance(http, aws) -> None:
    """An instance that served a token: signing key decrypted, client cached, connection pooled."""
    client_credentials_token(http, aws)
    services = wiring.services()
    assert services.keyring._private and services._kms is not None
    assert dynamo._SharedConnectionModel._shared_connection is not None


def _holds_no_instance_state() -> None:
    assert wiring._services is None
    assert dynamo._SharedConnectionModel._shared_connection is None
    assert dynamo.Item._connection is None and dynamo.ApiItem._connection is None


def test_after_restore_drops_decrypted_keys_caches_and_connections(http, aws):
    _warm_instance(http, aws)
    old_client = dynamo.shared_connection().client
    snapstart.after_restore()
    _holds_no_instance_state()
    fresh = wiring.services()
    assert fresh.keyring._private == {} and fresh._kms is None
    assert dynamo.shared_connection().client is not old_client
    client_credentials_token(http, aws)  # rebuilt on demand: the restored instance serves tokens


def test_before_snapshot_keeps_settings_and_binding_but_no_instance_state(http, aws):
    _warm_instance(http, aws)
    snapstart.before_snapshot()
    _holds_no_instance_state()
    assert dynamo.Item.Meta.table_name == aws.settings.table_name
    client_credentials_token(http, aws)


def test_after_restore_reseeds_random():
    random.seed(1234)
    snapshot_sequence = random.random()
    random.seed(1234)
    snapstart.after_restore()
    assert random.random() != snapshot_sequence


def test_register_hands_both_hooks_to_the_lambda_runtime(monkeypatch):
    registered: dict[str, object] = {}
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_before_snapshot = lambda hook: registered.setdefault("before", hook)
    runtime.register_after_restore = lambda hook: registered.setdefault("after", hook)
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    snapstart.register()
    assert registered == {"before": snapstart.before_snapshot, "after": snapstart.after_restore}


def test_register_outside_the_lambda_runtime_does_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import fails as outside Lambda
    snapstart.register()
