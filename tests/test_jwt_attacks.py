"""JWT access-token attacks (SECURITY-TESTS.md group J): every forgery is refused by both validators
the project ships, the /v1 bearer check (401) and introspection (exactly {"active": false})."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from typing import Any, Callable

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from chalicelib import clock
from tests.lifecycle_helpers import introspect, make_client, mint

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

INACTIVE = {"active": False}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(value if isinstance(value, bytes) else json.dumps(value).encode())


class Forge:
    """Builds compact JWS by hand, so any header, payload or signature can be produced."""

    def __init__(self, services: Any, grant_id: str) -> None:
        self.services = services
        record = services.keyring.current()
        self.kid = record.kid
        self.private = services.keyring._private_key(record)
        self.public_jwk = record.public_jwk
        now = clock.now()
        self.claims = {
            "iss": services.settings.issuer, "sub": "user-1", "aud": services.settings.api_audience,
            "client_id": "c1", "scope": "read:analysis", "jti": "jti-1", "iat": now, "exp": now + 600,
            "gid": grant_id,
        }

    def header(self, **changes: Any) -> dict[str, Any]:
        header = {"alg": "RS256", "kid": self.kid, "typ": "at+jwt", **changes}
        return {name: value for name, value in header.items() if value is not None}

    def rs(self, signing_input: bytes, digest: Any = None, key: Any = None) -> bytes:
        return (key or self.private).sign(signing_input, padding.PKCS1v15(), digest or hashes.SHA256())

    def token(self, header: dict[str, Any] | None = None, claims: Any = None,
              sign: Callable[[bytes], bytes] | None = None) -> str:
        head = segment(header if header is not None else self.header())
        body = segment(claims if claims is not None else self.claims)
        signing_input = f"{head}.{body}".encode()
        return f"{head}.{body}.{b64((sign or self.rs)(signing_input))}"

    def claims_with(self, **changes: Any) -> dict[str, Any]:
        claims = {**self.claims, **changes}
        return {name: value for name, value in claims.items() if value is not None}


def attacker_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(forge: Forge) -> bytes:
    return forge.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def hs256(secret: bytes) -> Callable[[bytes], bytes]:
    return lambda signing_input: hmac.new(secret, signing_input, hashlib.sha256).digest()


def _cases() -> dict[str, Callable[[Forge], str]]:
    now = clock.now
    evil = attacker_key()
    evil_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(evil.public_key()))
    return {
        # J-04
        "alg none, no signature": lambda f: f.token(f.header(alg="none"), sign=lambda _: b""),
        "alg None, no signature": lambda f: f.token(f.header(alg="None"), sign=lambda _: b""),
        "alg none, valid RS256 signature kept": lambda f: f.token(f.header(alg="none")),
        # J-05
        "HS256 with the public key PEM": lambda f: f.token(f.header(alg="HS256"), sign=hs256(public_pem(f))),
        "HS256 with the public JWK JSON": lambda f: f.token(
            f.header(alg="HS256"), sign=hs256(json.dumps(f.public_jwk).encode())),
        # J-06
        "PS256 header over an RS256 signature": lambda f: f.token(f.header(alg="PS256")),
        "RS512 header and signature with the same key": lambda f: f.token(
            f.header(alg="RS512"), sign=lambda data: f.rs(data, hashes.SHA512())),
        # J-07
        "unknown kid": lambda f: f.token(f.header(kid="no-such-key")),
        "kid path traversal": lambda f: f.token(f.header(kid="../../../../dev/null")),
        "kid SQL injection": lambda f: f.token(f.header(kid="' OR '1'='1")),
        "kid NoSQL object": lambda f: f.token(f.header(kid={"$ne": None})),
        "kid NoSQL string": lambda f: f.token(f.header(kid='{"$ne":null}')),
        "kid of 1.5 KB": lambda f: f.token(f.header(kid="k" * 1_500)),
        "empty kid": lambda f: f.token(f.header(kid="")),
        "no kid": lambda f: f.token({"alg": "RS256", "typ": "at+jwt"}),
        # J-08: an attacker's key, named in the header in every way
        "jwk header with the attacker's key": lambda f: f.token(
            f.header(kid=evil_jwk.get("kid", "evil"), jwk=evil_jwk), sign=lambda d: f.rs(d, key=evil)),
        "jwk header, server kid, attacker signature": lambda f: f.token(
            f.header(jwk=evil_jwk), sign=lambda d: f.rs(d, key=evil)),
        "jku header pointing at the attacker": lambda f: f.token(
            f.header(kid="evil", jku="https://attacker.example/jwks.json"), sign=lambda d: f.rs(d, key=evil)),
        "jku header on a validly signed token": lambda f: f.token(f.header(jku="https://attacker.example/jwks")),
        "x5u header": lambda f: f.token(f.header(x5u="https://attacker.example/cert.pem")),
        "x5c header": lambda f: f.token(f.header(x5c=["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"])),
        # J-09
        "crit with an unknown parameter": lambda f: f.token(f.header(crit=["exp-policy"], **{"exp-policy": 1})),
        # J-10
        "expired": lambda f: f.token(claims=f.claims_with(exp=now() - 1)),
        "nbf two minutes ahead": lambda f: f.token(claims=f.claims_with(nbf=now() + 120)),
        "iat two minutes ahead": lambda f: f.token(claims=f.claims_with(iat=now() + 120)),
        "iat a year ahead": lambda f: f.token(claims=f.claims_with(iat=now() + 365 * 86400)),
        "exp not a number": lambda f: f.token(claims=f.claims_with(exp="tomorrow")),
        "no exp": lambda f: f.token(claims=f.claims_with(exp=None)),
        # J-11
        "issuer with a trailing slash": lambda f: f.token(claims=f.claims_with(iss=f.claims["iss"] + "/")),
        "another issuer": lambda f: f.token(claims=f.claims_with(iss="https://evil.example")),
        "another audience": lambda f: f.token(claims=f.claims_with(aud="https://rs2.example")),
        "audience list": lambda f: f.token(claims=f.claims_with(aud=[f.claims["aud"], "https://rs2.example"])),
        "no audience": lambda f: f.token(claims=f.claims_with(aud=None)),
        # J-12
        "typ JWT": lambda f: f.token(f.header(typ="JWT")),
        "no typ": lambda f: f.token(f.header(typ=None)),
        "typ of an ID token": lambda f: f.token(f.header(typ="id_token+jwt")),
        # J-13
        "tampered payload": lambda f: _swap_payload(f.token(), f.claims_with(scope="read:analysis write:project")),
        "truncated signature": lambda f: f.token()[:-10],
        "no signature": lambda f: f.token().rsplit(".", 1)[0] + ".",
        "extra segment": lambda f: f.token() + ".e30",
        "two segments": lambda f: f.token().rsplit(".", 1)[0],
        "base64 padding on the signature": lambda f: f.token() + "==",
        "standard base64 alphabet": lambda f: f.token().replace("-", "+").replace("_", "/"),
        "payload not JSON": lambda f: f.token(claims=b"not json at all"),
        "payload a JSON list": lambda f: f.token(claims=b'["sub"]'),
        "duplicate sub member": lambda f: f.token(claims=_duplicate_sub(f.claims)),
        "header not JSON": lambda f: "bm90IGpzb24." + f.token().split(".", 1)[1],
        "whitespace inside": lambda f: f.token().replace(".", ". ", 1),
        "scope not a string": lambda f: f.token(claims=f.claims_with(scope=["read:analysis"])),
        "no sub": lambda f: f.token(claims=f.claims_with(sub=None)),
        "no client_id": lambda f: f.token(claims=f.claims_with(client_id=None)),
    }


def _swap_payload(token: str, claims: dict[str, Any]) -> str:
    head, _, signature = token.split(".")
    return f"{head}.{segment(claims)}.{signature}"


def _duplicate_sub(claims: dict[str, Any]) -> bytes:
    body = json.dumps({name: value for name, value in claims.items() if name != "sub"})
    return ('{"sub": "user-2", ' + body[1:-1] + ', "sub": "user-1"}').encode()


CASES = _cases()


@pytest.fixture
def forge(aws):
    make_client(aws, "c1")
    make_client(aws, "rs1", resource_server=True)
    minted = mint(aws, "c1", scope="read:analysis")
    return Forge(aws, minted.grant_id)


@pytest.fixture
def no_network(monkeypatch):
    """Validation must never open a connection (jku/x5u: no SSRF). moto runs in-process, without sockets."""
    attempts: list[Any] = []

    def refuse(*args: Any, **_: Any) -> None:
        attempts.append(args)
        raise OSError("network access during token validation")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_the_forge_makes_valid_tokens_so_the_cases_below_test_one_change_each(forge, http):
    token = forge.token()
    assert http.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert json.loads(introspect(http, token).body)["active"] is True


def refusal(http: Any, token: str) -> str | None:
    """What went wrong for this token, or None when both validators refused it as they must."""
    response = http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    if response.status_code != 401 or 'error="invalid_token"' not in response.headers.get("WWW-Authenticate", ""):
        return f"/v1/me answered {response.status_code}"
    if json.loads(response.body).get("error") != "invalid_token":
        return "/v1/me body has no invalid_token"
    answer = introspect(http, token)
    if answer.status_code != 200 or json.loads(answer.body) != INACTIVE:
        return f"/introspect answered {answer.status_code} {answer.body!r}"
    return None


def test_forged_or_malformed_tokens_are_refused_everywhere(forge, http, no_network):
    # one moto setup for every case (fast); each failure is reported by its case name
    failures = {case: problem for case, make in sorted(CASES.items()) if (problem := refusal(http, make(forge)))}
    assert failures == {}
    assert no_network == []
    assert len(CASES) >= 50


def test_j07_a_10_kb_kid_is_refused_before_any_parsing(forge, http):
    token = forge.token(forge.header(kid="k" * 10_000))
    assert http.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    answer = introspect(http, token)  # longer than any form value the endpoints accept
    assert answer.status_code == 400 and json.loads(answer.body)["error"] == "invalid_request"


def test_j01_j02_issued_tokens_have_the_rfc_9068_header_and_claims(forge):
    services = forge.services
    issued = services.access_tokens.issue(sub="user-1", client_id="c1", scope="read:analysis",
                                          audience=services.settings.api_audience, grant_id="g1")
    header = jwt.get_unverified_header(issued.token)
    assert header == {"alg": "RS256", "kid": forge.kid, "typ": "at+jwt"}
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert set(claims) == {"iss", "sub", "aud", "client_id", "scope", "jti", "iat", "exp", "gid"}
    other = services.access_tokens.issue(sub="user-1", client_id="c1", scope="read:analysis",
                                         audience=services.settings.api_audience, grant_id="g1")
    assert jwt.decode(other.token, options={"verify_signature": False})["jti"] != claims["jti"]


def test_j03_tokens_verify_with_joserfc_using_the_published_jwks(forge, http):
    issued = forge.services.access_tokens.issue(sub="user-1", client_id="c1", scope="read:analysis",
                                                audience=forge.services.settings.api_audience, grant_id="g1")
    jwks = json.loads(http.get("/.well-known/jwks.json").body)
    decoded = jose_jwt.decode(issued.token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    assert decoded.header["typ"] == "at+jwt"
    assert decoded.claims["sub"] == "user-1" and decoded.claims["aud"] == forge.services.settings.api_audience
    tampered = _swap_payload(issued.token, {**decoded.claims, "sub": "user-2"})
    with pytest.raises(Exception):  # noqa: B017 - joserfc raises its own BadSignatureError
        jose_jwt.decode(tampered, KeySet.import_key_set(jwks), algorithms=["RS256"])


def test_j10_the_expiry_boundary_and_the_leeway(forge, http):
    now = clock.now()
    just_valid = forge.token(claims=forge.claims_with(exp=now + 1, iat=now + 29, nbf=now + 29))
    assert http.get("/v1/me", headers={"Authorization": f"Bearer {just_valid}"}).status_code == 200
    clock.travel(1)  # now == exp
    assert http.get("/v1/me", headers={"Authorization": f"Bearer {just_valid}"}).status_code == 401


def test_j14_a_revoked_grant_is_visible_at_introspection_though_signature_and_exp_are_valid(forge, http):
    token = forge.token()
    forge.services.store.revoke_grant("c1", forge.claims["gid"])
    assert json.loads(introspect(http, token).body) == INACTIVE


def test_j15_tokens_of_a_retired_key_verify_until_the_key_leaves_the_jwks(forge, http):
    token = forge.token()
    keyring = forge.services.keyring
    keyring.rotate()
    assert http.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert json.loads(introspect(http, token).body)["active"] is True
    clock.travel(keyring.publish_retired_seconds + forge.services.settings.key_cache_seconds)
    keyring.rotate()  # removes the long-retired key
    keyring.invalidate()
    assert forge.kid not in {k["kid"] for k in keyring.jwks()["keys"]}
    fresh = forge.token(claims=forge.claims_with(iat=clock.now(), exp=clock.now() + 600))
    assert http.get("/v1/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 401
