"""Lambda SnapStart runtime hooks (Python 3.12+): what a snapshot may keep, what a restore must rebuild.

One snapshot is restored into many execution environments, possibly hours later. So the snapshot
keeps only what is the same for every instance and holds no secret: imported modules (the bulk of a
cold start), and the settings and PynamoDB model binding, which are read from the environment. It
keeps NO decrypted signing key, no cached client/resource records or key ring, no botocore session,
client or connection pool (a pooled connection would be shared by every restored copy, and a client
carries the credentials it resolved before the snapshot). After a restore the same things are dropped
again (belt and braces, should anything have built them between the hook and the snapshot) and
`random` is reseeded, so no two restored instances share a pseudo-random sequence. Tokens, ids and
nonces come from `secrets`/`os.urandom`, which read the kernel on every call and keep no state.
"""

from __future__ import annotations

import random

from chalicelib import wiring
from chalicelib.settings import get_settings
from chalicelib.store import dynamo


def forget_instance_state() -> None:
    """Drop the services (decrypted keys, caches, the KMS client) and the DynamoDB session and pool."""
    wiring.reset()
    dynamo.drop_connections()


def before_snapshot() -> None:
    """Import what the first request would import, bind the models; then keep nothing per instance."""
    import argon2  # noqa: F401  (the sign-in page's hasher)
    import jwt  # noqa: F401
    from cryptography.hazmat.primitives import serialization  # noqa: F401
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401

    forget_instance_state()
    dynamo.bind_models(get_settings())


def after_restore() -> None:
    forget_instance_state()
    random.seed()  # from os.urandom: each restored copy gets its own sequence


def register() -> None:
    """Register the hooks with the Lambda runtime; outside it (tests, chalice local) there is nothing to do."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:  # the module exists only in the Lambda Python runtime
        return
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
