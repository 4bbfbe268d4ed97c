"""Signing keys: private halves only as KMS envelopes, decrypted once per process, JWKS public only."""

import base64
import functools
import json

import boto3
import jwt
import pytest

from chalicelib import wiring
from chalicelib.crypto.envelope import Envelope, EnvelopeError
from chalicelib.crypto.keyring import envelope_context
from tests.race_support import all_at_once
from tests.token_helpers import aws_calls

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def _key_items(services):
    table = boto3.resource("dynamodb").Table(services.settings.table_name)
    return [item for item in table.scan()["Items"] if item["kind"] == "signing-key"]


def test_stored_key_items_hold_no_private_key_material(aws):
    items = _key_items(aws)
    assert {json.loads(i["data"])["status"] for i in items} == {"current", "next"}
    for item in items:
        raw = json.dumps(item, default=str)
        assert "PRIVATE KEY" not in raw
        data = json.loads(item["data"])
        assert not PRIVATE_MEMBERS & set(data["public_jwk"])
        envelope = data["private_envelope"]
        assert set(envelope) == {"encrypted_data_key", "nonce", "ciphertext"}
        assert b"PRIVATE KEY" not in base64.b64decode(envelope["ciphertext"])


def test_envelope_needs_the_right_encryption_context(aws):
    record = aws.keyring.current()
    envelope = aws.envelope()
    assert b"PRIVATE KEY" in envelope.open(record.private_envelope, envelope_context(record.kid))
    with pytest.raises(EnvelopeError) as raised:
        envelope.open(record.private_envelope, envelope_context("another-kid"))
    assert "InvalidCiphertextException" in str(raised.value)


def test_envelope_refuses_tampered_ciphertext(aws):
    envelope = Envelope(aws.kms(), aws.settings.kms_key_id)
    sealed = envelope.seal(b"secret", {"purpose": "test"})
    raw = bytearray(base64.b64decode(sealed["ciphertext"]))
    raw[0] ^= 1
    with pytest.raises(EnvelopeError):
        envelope.open({**sealed, "ciphertext": base64.b64encode(bytes(raw)).decode()}, {"purpose": "test"})


def test_one_kms_decrypt_per_process_and_none_per_request(aws):
    wiring.reset()  # a fresh "process": nothing cached yet
    services = wiring.services()
    with aws_calls(services) as calls:
        for _ in range(5):
            token = services.access_tokens.issue(sub="usr_1", client_id="app", scope="read:analysis",
                                                 audience=services.settings.api_audience, grant_id="g").token
            services.access_tokens.verify(token, services.settings.api_audience)
    assert calls == ["dynamodb:Query", "kms:Decrypt"]  # the key ring, read once and cached, opened once


def test_requests_signing_at_once_build_one_kms_client_and_decrypt_once(aws):
    """The threaded local run takes a burst of first requests together: each used to build its own KMS
    client (a model load each) and open the signing key with its own Decrypt."""
    wiring.reset()
    services = wiring.services()
    assert len({id(client) for client in all_at_once(*[services.kms] * 10)}) == 1
    issue = functools.partial(services.access_tokens.issue, sub="usr_1", client_id="app", scope="read:analysis",
                              audience=services.settings.api_audience, grant_id="g")
    with aws_calls(services) as calls:
        issued = all_at_once(*[issue] * 10)
    assert not [outcome for outcome in issued if isinstance(outcome, Exception)]
    assert calls.count("kms:Decrypt") == 1


def test_jwks_lists_public_keys_that_verify_issued_tokens(http, aws):
    response = http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = json.loads(response.body)["keys"]
    assert len(keys) == 2 and len({k["kid"] for k in keys}) == 2
    for key in keys:
        assert key["kty"] == "RSA" and key["use"] == "sig" and key["alg"] == "RS256"
        assert not PRIVATE_MEMBERS & set(key)
    issued = aws.access_tokens.issue(sub="u", client_id="c", scope="", audience="aud", grant_id=None)
    kid = jwt.get_unverified_header(issued.token)["kid"]
    public = jwt.PyJWK(next(k for k in keys if k["kid"] == kid))
    claims = jwt.decode(issued.token, public, algorithms=["RS256"], audience="aud")
    assert claims["sub"] == "u"


def test_rotation_keeps_old_tokens_valid_and_publishes_both(aws):
    before = aws.access_tokens.issue(sub="u", client_id="c", scope="", audience="aud", grant_id=None).token
    old_kid = jwt.get_unverified_header(before)["kid"]
    result = aws.keyring.rotate()
    after = aws.access_tokens.issue(sub="u", client_id="c", scope="", audience="aud", grant_id=None).token
    assert jwt.get_unverified_header(after)["kid"] == result["current"] != old_kid
    published = {k["kid"] for k in aws.keyring.jwks()["keys"]}
    assert {old_kid, result["current"], result["next"]} <= published
    assert aws.access_tokens.verify(before, "aud").sub == "u"
    assert aws.access_tokens.verify(after, "aud").sub == "u"


def test_kms_outage_does_not_break_jwks(http, aws, monkeypatch):
    def broken(*args, **kwargs):
        raise EnvelopeError("KMS Decrypt failed: KMSInternalException")

    monkeypatch.setattr(Envelope, "open", broken)
    assert http.get("/.well-known/jwks.json").status_code == 200
