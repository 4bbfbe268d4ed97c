"""Property tests (SECURITY-TESTS.md Z-04..Z-07) for the pure parsers: the redirect-URI matcher, the form
parser, the Basic header codec and PKCE. Example counts are bounded so the file runs in a few seconds."""

from __future__ import annotations

import base64
import hashlib
import re
import string
from types import SimpleNamespace
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chalicelib.oauth import pkce
from chalicelib.oauth.clients import client_credentials, match_redirect_uri
from chalicelib.oauth.errors import InvalidClient, InvalidRequest
from chalicelib.records import ClientRecord
from chalicelib.web.common import FORM, MAX_VALUE_LENGTH, form_pairs, form_parameters

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- Z-04 redirect matcher ---------------------------------------------------------------------------

REGISTERED = [
    "https://c1.example/cb",
    "https://q1.example/cb?x=1&y=2",
    "https://app.example:8443/oauth/callback",
    "http://127.0.0.1/cb",
    "http://127.0.0.1:8765/callback",
    "http://[::1]/cb",
    "http://[::1]:51004/cb?x=1",
]
# look-alikes a human (or a lax normaliser) might take for the original character
CONFUSABLES = {
    "c": ["\u0441", "\u217d"], "e": ["\u0435"], "a": ["\u0430"], "o": ["\u043e", "0"], "p": ["\u0440"],
    "x": ["\u0445"], "1": ["l", "\u0661", "\uff11"], ".": ["\u3002", "\uff0e"], "/": ["\u2215", "\uff0f", "\\"],
    ":": ["\uff1a"], "b": ["\u0184"], "l": ["1", "I"], "0": ["o", "\u0660"],
}
# characters a parser might drop, normalise or split on
ODD_CHARS = list("/\\?#@:;.%&=+ ~[]") + ["\t", "\r\n", "\n", "\x00", "\x7f", "\u200b", "\ufeff", "%2F", "%00"]

_LOOPBACK = re.compile(r"http://(127\.0\.0\.1|\[::1\])(?::[0-9]{1,5})?([/?].*)?", re.DOTALL)


def _client(uri: str) -> ClientRecord:
    return ClientRecord(client_id="c", name="C", redirect_uris=[uri], scopes=[], grant_types=[],
                        auth_method="none")


def _split_port(uri: str) -> tuple[str, str | None, str]:
    """(before the port, the port or None, after it) of a URI whose authority is a plain host."""
    scheme, rest = uri.split("://", 1)
    authority, sep, tail = rest.partition("/") if "/" in rest.split("?")[0] else rest.partition("?")
    host, _, port = authority.rpartition(":") if not authority.endswith("]") else (authority, "", "")
    if not host:
        host, port = authority, ""
    return f"{scheme}://{host}", port or None, sep + tail


def _only_the_loopback_port_differs(registered: str, candidate: str) -> bool:
    """The oracle: RFC 8252 §7.3 lets a native app pick any port on a loopback IP literal, nothing else."""
    if not _LOOPBACK.fullmatch(registered) or not _LOOPBACK.fullmatch(candidate):
        return False
    reg_base, _, reg_tail = _split_port(registered)
    base, port, tail = _split_port(candidate)
    return (base, tail) == (reg_base, reg_tail) and (port is None or 1 <= int(port) <= 65535)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str]:
    uri = draw(st.sampled_from(REGISTERED))
    base, port, tail = _split_port(uri)
    scheme, host = base.split("://", 1)
    kind = draw(st.sampled_from([
        "scheme_case", "host_case", "path_case", "port", "segment", "percent", "userinfo", "query",
        "fragment", "trailing", "confusable", "insert", "delete",
    ]))
    if kind == "scheme_case":
        return uri, uri.replace(scheme, draw(st.sampled_from([scheme.upper(), scheme.capitalize()])), 1)
    if kind == "host_case":
        return uri, f"{scheme}://{host.upper()}" + (f":{port}" if port else "") + tail
    if kind == "path_case":
        return uri, base + (f":{port}" if port else "") + tail.upper()
    if kind == "port":
        new_port = draw(st.one_of(st.none(), st.integers(0, 70000).map(str),
                                  st.sampled_from(["", "080", "443", "80", "8765", "+80", "\u0668\u0660"])))
        return uri, base + (f":{new_port}" if new_port is not None else "") + tail
    authority = base + (f":{port}" if port else "")
    path, qmark, query = tail.partition("?")
    if kind == "segment":
        segment = draw(st.sampled_from(["/x", "/", "/..", "/.", "/../cb", "123", "x"]))
        new_path = draw(st.sampled_from([path + segment, path.rsplit("/", 1)[0], segment + path, ""]))
        return uri, authority + new_path + qmark + query
    if kind == "percent":
        chars = [i for i, ch in enumerate(path) if ch not in "/"]
        if not chars:
            return uri, uri
        i = draw(st.sampled_from(chars))
        escape = draw(st.sampled_from(["%{:02X}", "%{:02x}", "%25{:02X}"])).format(ord(path[i]))
        return uri, authority + path[:i] + escape + path[i + 1:] + qmark + query
    if kind == "userinfo":
        who = draw(st.sampled_from(["user@", "user:pw@", f"{host}@", "@", "evil.example@"]))
        return uri, f"{scheme}://{who}" + authority.split("://", 1)[1] + tail
    if kind == "query":
        extra = draw(st.sampled_from(["", "z=9", "x=2", "y=2&x=1", "x=1", "x=1&y=2&x=1", "X=1&Y=2"]))
        return uri, authority + path + ("?" + extra if extra or draw(st.booleans()) else "")
    if kind == "fragment":
        return uri, uri + "#" + draw(st.sampled_from(["", "x", "@evil.example", "/cb"]))
    if kind == "trailing":
        where = draw(st.sampled_from(["slash", "dot", "space"]))
        if where == "slash":
            return uri, authority + path + "/" + qmark + query
        if where == "dot":
            return uri, f"{scheme}://{host}." + (f":{port}" if port else "") + tail
        return uri, uri + " "
    if kind == "confusable":
        spots = [i for i, ch in enumerate(uri) if ch in CONFUSABLES]
        i = draw(st.sampled_from(spots))
        return uri, uri[:i] + draw(st.sampled_from(CONFUSABLES[uri[i]])) + uri[i + 1:]
    i = draw(st.integers(0, len(uri) - 1))
    if kind == "insert":
        return uri, uri[:i] + draw(st.sampled_from(ODD_CHARS + [string.digits[i % 10]])) + uri[i:]
    return uri, uri[:i] + uri[i + 1:]


@FAST
@given(mutated())
@example(("http://127.0.0.1/cb", "HTTP://127.0.0.1/cb"))  # scheme case was normalised before comparing
@example(("http://127.0.0.1/cb", "http://127.0.0.1/c\tb"))  # urlsplit drops tabs and newlines
@example(("http://127.0.0.1/cb", "http://127.0.0.1:5000/cb\r\n"))  # was matched: CR LF into the Location
@example(("http://127.0.0.1/cb", "http://127.0.0.1/cb#"))  # an empty fragment counted as none
@example(("http://127.0.0.1/cb", "http://127.0.0.1/cb?"))  # an empty query counted as none
@example(("http://127.0.0.1/cb", " http://127.0.0.1/cb"))  # leading space stripped
def test_z04_a_redirect_uri_matches_only_itself_or_its_loopback_port_variants(case: tuple[str, str]):
    registered, candidate = case
    expected = candidate == registered or _only_the_loopback_port_differs(registered, candidate)
    assert (match_redirect_uri(_client(registered), candidate) is not None) is expected, candidate
    if expected:  # the client gets exactly what it asked for, never a rewritten URI
        assert match_redirect_uri(_client(registered), candidate) == candidate


@FAST
@given(mutated())
@example(("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb"))  # was matched for confidential web clients too
def test_z04_a_confidential_client_matches_only_its_exact_uri(case: tuple[str, str]):
    """RFC 8252 §7.3's any-port loopback is for native (public) apps only."""
    registered, candidate = case
    client = _client(registered)
    client.auth_method = "client_secret_basic"
    assert (match_redirect_uri(client, candidate) is not None) is (candidate == registered), candidate


@FAST
@given(st.sampled_from(REGISTERED), st.text(max_size=80))
def test_z04_arbitrary_text_never_matches_unless_it_is_the_registration(registered: str, text: str):
    expected = text == registered or _only_the_loopback_port_differs(registered, text)
    assert (match_redirect_uri(_client(registered), text) is not None) is expected


def test_z04_the_oracle_accepts_port_variants_of_loopback_registrations():
    # the oracle itself must not be vacuous: these are the only non-identical URIs that match
    assert _only_the_loopback_port_differs("http://127.0.0.1/cb", "http://127.0.0.1:51004/cb")
    assert _only_the_loopback_port_differs("http://[::1]:51004/cb?x=1", "http://[::1]/cb?x=1")
    assert not _only_the_loopback_port_differs("https://c1.example/cb", "https://c1.example:443/cb")
    assert match_redirect_uri(_client("http://[::1]/cb"), "http://[::1]:61023/cb") == "http://[::1]:61023/cb"


# --- Z-05 form parser ------------------------------------------------------------------------------

def _request(body: bytes, content_type: str = FORM) -> SimpleNamespace:
    return SimpleNamespace(headers={"content-type": content_type}, raw_body=body)


# what the form parser accepts in a name or a value: no NUL, no U+FFFD (a broken byte), no BOM (refused below)
clean_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00\ufffd\ufeff"), max_size=40)
unique_pairs = st.dictionaries(clean_text, clean_text, max_size=20)


@FAST
@given(unique_pairs, st.sampled_from([quote_plus, quote]))
def test_z05_unique_keys_round_trip(params: dict[str, str], quote_via):
    body = urlencode(list(params.items()), quote_via=quote_via).encode()
    assert form_parameters(_request(body)) == params


@FAST
@given(unique_pairs.filter(bool), st.data())
def test_z05_any_duplicate_key_is_refused_and_nothing_is_dropped(params: dict[str, str], data: st.DataObject):
    pairs = list(params.items())
    name = data.draw(st.sampled_from(sorted(params)))
    pairs.insert(data.draw(st.integers(0, len(pairs))), (name, data.draw(clean_text)))
    body = urlencode(pairs).encode()
    # every pair reaches the callers that report duplicates, in order
    assert form_pairs(_request(body)) == pairs
    with pytest.raises(InvalidRequest):
        form_parameters(_request(body))


@FAST
@given(st.binary(max_size=200))
@example(b"a=%zz")
@example(b"code=%e")
@example(b"a%00=1")  # NUL in a name
@example(b"\xef\xbb\xbfgrant_type=x")  # BOM
@example(b"a=%ED%A0%80")
def test_z05_arbitrary_bytes_parse_or_raise_invalid_request_only(raw: bytes):
    try:
        params = form_parameters(_request(raw))
    except InvalidRequest as error:
        assert error.status in (400, 413)
        return
    for name, value in params.items():
        for text in (name, value):
            assert not set(text) & {"\x00", "\ufffd", "\ufeff"}
        assert len(value) <= MAX_VALUE_LENGTH


@FAST
@given(clean_text, st.sampled_from(["%zz", "%g0", "%", "%e", "%00", "%ff", "%ED%A0%80", "%C0%AF", "%EF%BB%BF"]),
       st.booleans())
def test_z05_bad_escapes_invalid_utf8_and_nul_are_invalid_request(text: str, bad: str, in_name: bool):
    quoted = quote_plus(text)
    body = (f"{quoted}{bad}=1" if in_name else f"name={quoted}{bad}").encode()
    with pytest.raises(InvalidRequest):
        form_parameters(_request(body))


# --- Z-06 Basic header codec -----------------------------------------------------------------------

def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, joined by ':', base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


unicode_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)


@FAST
@given(unicode_text, unicode_text, st.sampled_from(["Basic", "basic", "BASIC"]))
@example(":%+ x", "p:a%s+s w%3A", "Basic")
@example("client", "a%2", "Basic")
def test_z06_basic_decode_inverts_encode(client_id: str, secret: str, scheme: str):
    header = _basic(client_id, secret).replace("Basic", scheme, 1)
    if len(header) > 1024:  # a bounded header (T-24's 8 KB case); every realistic pair fits
        with pytest.raises(InvalidClient):
            client_credentials(header, {})
        return
    credentials = client_credentials(header, {})
    assert (credentials.client_id, credentials.secret) == (client_id, secret)
    assert credentials.method == "client_secret_basic" and credentials.used_basic


header_junk = st.one_of(
    st.text(max_size=120),
    st.binary(max_size=90).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.binary(max_size=90).map(lambda b: "Basic " + base64.urlsafe_b64encode(b).decode().rstrip("=")),
    st.text(max_size=60).map(lambda t: "Basic " + t),
    st.integers(900, 1100).map(lambda n: "Basic " + "A" * n),
)


@FAST
@given(header_junk, st.dictionaries(st.sampled_from(["client_id", "client_secret", "grant_type"]),
                                    st.text(max_size=20), max_size=3))
@example("Basic", {})
@example("Basic ", {})
@example("Basic Y2xpZW50", {})  # no colon
@example("Basic !!!!", {})
@example("Basic Y2xpZW50OnNlY3JldA==", {"client_secret": "x"})  # two mechanisms
@example("Basic Y2xpZW50OnNlY3JldA==", {"client_id": "other"})  # mismatched id
@example("Basic Y2xpZW50OnNlY3JldA==, Basic Y2xpZW50OnNlY3JldA==", {})  # two headers joined
@example("Bearer x", {})
def test_z06_malformed_credentials_raise_only_invalid_client_or_invalid_request(header: str, form: dict[str, str]):
    try:
        credentials = client_credentials(header, form)
    except InvalidClient as error:
        assert error.status == 401 and error.headers.get("WWW-Authenticate", "").startswith("Basic ")
        return
    except InvalidRequest as error:
        assert error.status == 400
        return
    assert credentials.used_basic and isinstance(credentials.client_id, str)
    assert isinstance(credentials.secret, str)


# --- Z-07 PKCE -------------------------------------------------------------------------------------

UNRESERVED = string.ascii_letters + string.digits + "-._~"
verifiers = st.text(st.sampled_from(UNRESERVED), min_size=43, max_size=128)


def _reference_s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


@FAST
@given(verifiers)
@example("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
def test_z07_every_valid_verifier_verifies_against_its_own_challenge(verifier: str):
    challenge = pkce.s256(verifier)
    assert challenge == _reference_s256(verifier)
    assert pkce.valid_challenge(challenge)
    assert pkce.verifier_matches(verifier, challenge)


@FAST
@given(verifiers, st.one_of(verifiers, st.text(max_size=140)))
def test_z07_any_other_verifier_fails(verifier: str, other: str):
    if other != verifier:
        assert not pkce.verifier_matches(other, pkce.s256(verifier))


@FAST
@given(st.one_of(
    st.text(st.sampled_from(UNRESERVED), max_size=42),
    st.text(st.sampled_from(UNRESERVED), min_size=129, max_size=200),
    st.tuples(verifiers, st.integers(0, 42), st.sampled_from(list("+/= %\n\x00é\u0661") + ["\r\n"])).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1]:]
    ),
))
@example("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk\n")  # `$` in a regex would let a trailing newline in
def test_z07_verifiers_outside_the_abnf_are_rejected(verifier: str):
    assert not pkce.valid_verifier(verifier)
    # even when the challenge is computed from those very bytes
    challenge = _reference_s256(verifier)
    assert not pkce.verifier_matches(verifier, challenge)


@FAST
@given(st.text(max_size=60))
@example("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\n")
@example("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM=")
def test_z07_only_43_base64url_characters_are_a_challenge(challenge: str):
    assert pkce.valid_challenge(challenge) is bool(re.fullmatch(r"[A-Za-z0-9_-]{43}", challenge))


def test_z07_rfc7636_appendix_b_vector():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce.s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert pkce.verifier_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
