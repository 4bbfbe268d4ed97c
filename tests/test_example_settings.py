"""The example apps (clipron_webapp.py, clipron_signin.py) find the authorization server from the same
settings as `make run` (example_support.default_issuer, the default of their --issuer)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
try:
    import example_support
finally:
    sys.path.pop(0)


@pytest.mark.parametrize(("environ", "issuer"), [
    ({}, "http://127.0.0.1:8000"),
    ({"PORT": "8100"}, "http://127.0.0.1:8100"),
    ({"PORT": "8100", "ISSUER_URL": "https://auth.example"}, "https://auth.example"),
    ({"ISSUER_URL": "https://auth.example", "CLIPRON_ISSUER": "https://other.example"}, "https://other.example"),
])
def test_the_issuer_follows_issuer_url_and_port(environ, issuer):
    assert example_support.default_issuer(environ) == issuer
