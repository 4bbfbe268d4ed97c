"""Z-09: mutations of a valid access token never verify unless byte-identical to the original; the
validator raises only InvalidToken and opens no socket and no file while it works."""

from __future__ import annotations

import base64
import builtins
import contextlib
import io
import json
import os
import socket
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chalicelib.oauth.errors import InvalidToken
from tests.lifecycle_helpers import mint

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FUZZ = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def token(aws) -> str:
    return mint(aws, "c1").access_token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@contextlib.contextmanager
def no_io() -> Iterator[None]:
    """Any socket connect or file open inside the block fails the test."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("the validator tried to open a socket or a file")

    saved = (socket.socket.connect, socket.create_connection, builtins.open, io.open, os.open)
    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]
    builtins.open = io.open = os.open = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        (socket.socket.connect, socket.create_connection, builtins.open, io.open, os.open) = saved


def _verify(aws, candidate: str):
    with no_io():
        return aws.access_tokens.verify(candidate, aws.settings.api_audience)


@st.composite
def mutations(draw: st.DrawFn, token: str) -> str:
    header, payload, signature = token.split(".")
    kind = draw(st.sampled_from(["char", "insert", "delete", "header", "payload", "signature", "alg", "pad"]))
    if kind in ("char", "insert", "delete"):
        i = draw(st.integers(0, len(token) - 1))
        ch = draw(st.sampled_from(B64URL + ".=+/ "))
        if kind == "char":
            return token[:i] + ch + token[i + 1:]
        return token[:i] + ch + token[i:] if kind == "insert" else token[:i] + token[i + 1:]
    if kind in ("header", "payload"):
        segment = header if kind == "header" else payload
        claims = json.loads(_unb64(segment))
        name = draw(st.sampled_from(sorted(claims) + ["nbf", "kid", "crit", "jku", "x5u", "extra"]))
        value = draw(st.one_of(st.none(), st.integers(-2**40, 2**40), st.text(max_size=20), st.booleans(),
                               st.sampled_from(["none", "HS256", "RS512", "c2", "JWT", "at+JWT", "client:c1"]),
                               st.lists(st.text(max_size=5), max_size=2)))
        if draw(st.booleans()):
            claims.pop(name, None)
        else:
            claims[name] = value
        raw = json.dumps(claims, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")]))).encode()
        new = _b64(raw)
        return f"{new}.{payload}.{signature}" if kind == "header" else f"{header}.{new}.{signature}"
    if kind == "signature":
        raw = bytearray(_unb64(signature))
        i = draw(st.integers(0, len(raw) - 1))
        raw[i] ^= draw(st.integers(1, 255))
        return f"{header}.{payload}.{_b64(bytes(raw))}"
    if kind == "alg":  # alg=none, or HS256 keyed with something guessable (algorithm confusion)
        import hashlib
        import hmac

        alg = draw(st.sampled_from(["none", "HS256"]))
        new_header = _b64(json.dumps({**json.loads(_unb64(header)), "alg": alg}).encode())
        signing_input = f"{new_header}.{payload}".encode()
        sig = "" if alg == "none" else _b64(hmac.new(b"", signing_input, hashlib.sha256).digest())
        return f"{new_header}.{payload}.{sig}"
    segment_index = draw(st.integers(0, 2))  # padding: another spelling of the same bytes
    parts = [header, payload, signature]
    parts[segment_index] += "=" * draw(st.integers(1, 2))
    return ".".join(parts)


def _other_spellings_of_last_char(segment: str) -> list[str]:
    """Base64url strings that decode to the same bytes: the last character's unused low bits differ."""
    raw = _unb64(segment)
    return [segment[:-1] + ch for ch in B64URL if ch != segment[-1] and _unb64(segment[:-1] + ch) == raw]


def test_z09_the_original_verifies_without_io(aws, token):
    claims = _verify(aws, token)
    assert claims.client_id == "c1"


def test_z09_no_other_base64_spelling_of_a_segment_verifies(aws, token):
    """RS256 signatures are 256 bytes: the last base64url character carries 4 unused bits."""
    header, payload, signature = token.split(".")
    variants = [f"{header}.{payload}.{s}" for s in _other_spellings_of_last_char(signature)]
    variants += [f"{h}.{payload}.{signature}" for h in _other_spellings_of_last_char(header)]
    variants += [f"{header}.{p}.{signature}" for p in _other_spellings_of_last_char(payload)]
    assert variants  # the signature always has some
    for variant in variants:
        with pytest.raises(InvalidToken):
            _verify(aws, variant)


@FUZZ
@given(data=st.data())
def test_z09_mutations_never_verify_unless_byte_identical(aws, token, data):
    candidate = data.draw(mutations(token))
    if candidate == token:
        assert _verify(aws, candidate).jti
        return
    with pytest.raises(InvalidToken):
        _verify(aws, candidate)


@FUZZ
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                 st.lists(st.text(B64URL, max_size=80), min_size=1, max_size=5).map(".".join)))
@example("e30.e30.e30")
@example("W10.W10.AA")  # JSON arrays where objects belong
@example("bnVsbA.bnVsbA.AA")  # null
@example("eyJhbGciOiJSUzI1NiIsImFsZyI6Im5vbmUifQ.e30.AA")  # a duplicated member
def test_z09_arbitrary_input_raises_only_invalid_token(aws, text):
    with pytest.raises(InvalidToken):
        _verify(aws, text)
