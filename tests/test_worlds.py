"""The worlds the tests run in (tests/worlds.py) stay as cheap for the last test as for the first."""

from __future__ import annotations

from moto.core.models import responses_mock

from tests.conftest import _moto


def _registered_url_patterns() -> int:
    return len(responses_mock._registry.registered)


def test_a_moto_world_per_test_leaves_nothing_that_grows():
    """Started per test, moto's mock registered ~1,300 more URL patterns with `responses` every time (and
    every test then built its own KMS client)."""
    with _moto.session() as first:
        kms_clients = {id(first.kms())}
    patterns = _registered_url_patterns()
    for _ in range(3):
        with _moto.session() as services:
            kms_clients.add(id(services.kms()))
    assert _registered_url_patterns() == patterns
    assert len(kms_clients) == 1
