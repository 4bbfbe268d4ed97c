"""RFC 9068 JWT access tokens: issue and verify (offline, against the cached key ring)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from chalicelib import strict_json
from chalicelib.crypto.secrets import new_id
from chalicelib.oauth.errors import InvalidToken
from chalicelib.settings import Settings

ACCESS_TOKEN_TYP = "at+jwt"
LEEWAY_SECONDS = 30  # clock skew between Lambda instances and resource servers (at most 60)
MAX_TOKEN_LENGTH = 4096
CLIENT_SUBJECT_PREFIX = "client:"  # client_credentials `sub`: a namespace users' ids never use
_ACCEPTED_TYP = {"at+jwt", "application/at+jwt"}
_UNSUPPORTED_HEADERS = ("crit", "jku", "x5u", "jwk", "x5c")
# three unpadded base64url segments, nothing else: padding or extra segments would let one token
# take several spellings (RFC 8725 §3)
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")


class Signer(Protocol):
    def sign(self, claims: dict[str, Any], typ: str) -> str: ...
    def public_key(self, kid: str) -> Any | None: ...


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int
    expires_at: int


@dataclass(frozen=True)
class AccessTokenClaims:
    sub: str
    client_id: str
    scope: list[str]
    grant_id: str | None
    jti: str
    iat: int
    exp: int
    aud: str
    iss: str
    act: dict[str, Any] | None = None  # RFC 8693 §4.1: who acts for `sub` (token exchange)
    grant_client_id: str | None = None  # the client whose grant this token belongs to, when not client_id

    @property
    def grant_owner(self) -> str:
        """The client id under which the grant `grant_id` is stored."""
        return self.grant_client_id or self.client_id

    @property
    def is_client_token(self) -> bool:
        return self.sub.startswith(CLIENT_SUBJECT_PREFIX)


class AccessTokens:
    def __init__(self, signer: Signer, settings: Settings, clock: Callable[[], int]) -> None:
        self.signer = signer
        self.issuer = settings.issuer
        self.lifetime = settings.access_token_seconds
        self.clock = clock

    def issue(
        self,
        *,
        sub: str,
        client_id: str,
        scope: str,
        audience: str,
        grant_id: str | None,
        lifetime: int | None = None,
        act: dict[str, Any] | None = None,
        grant_client_id: str | None = None,
    ) -> IssuedAccessToken:
        now = self.clock()
        lifetime = self.lifetime if lifetime is None else lifetime
        jti = new_id()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience,
            "client_id": client_id,
            "scope": scope,
            "jti": jti,
            "iat": now,
            "exp": now + lifetime,
        }
        if grant_id:
            claims["gid"] = grant_id
        if grant_client_id and grant_client_id != client_id:
            claims["gcid"] = grant_client_id
        if act:
            claims["act"] = act
        token = self.signer.sign(claims, ACCESS_TOKEN_TYP)
        return IssuedAccessToken(token, jti, lifetime, now + lifetime)

    def verify(self, token: str, audience: str | None, *, allow_expired: bool = False) -> AccessTokenClaims:
        """The token's claims, or InvalidToken. No network, file or database access happens here.

        `audience` None accepts a token for any resource (the authorization server's own endpoints:
        introspection, revocation, token exchange); a resource server always names itself.
        `allow_expired` skips only the expiry check: revocation of an expired token still ends its grant.
        """
        claims = verify_jws(
            token,
            self.signer,
            self.issuer,
            accepted_typ=_ACCEPTED_TYP,
            required=("iss", "sub", "aud", "exp", "iat", "jti", "client_id"),
            audience=audience,
        )
        self._check_times(claims, allow_expired)
        if not isinstance(claims["aud"], str) or not isinstance(claims.get("act", {}), dict):
            raise InvalidToken("the access token is malformed")
        return AccessTokenClaims(
            sub=str(claims["sub"]),
            client_id=str(claims["client_id"]),
            scope=claims.get("scope", "").split(),
            grant_id=claims.get("gid"),
            jti=str(claims["jti"]),
            iat=int(claims["iat"]),
            exp=int(claims["exp"]),
            aud=claims["aud"],
            iss=str(claims["iss"]),
            act=claims.get("act"),
            grant_client_id=claims.get("gcid"),
        )


    def _check_times(self, claims: dict[str, Any], allow_expired: bool = False) -> None:
        now = self.clock()
        try:
            exp, iat, nbf = int(claims["exp"]), int(claims["iat"]), int(claims.get("nbf", claims["iat"]))
        except (TypeError, ValueError):
            raise InvalidToken("the access token is malformed") from None
        if not isinstance(claims.get("scope", ""), str):
            raise InvalidToken("the access token is malformed")
        if now >= exp and not allow_expired:  # F-09: at exp the token is expired; leeway only forgives clocks ahead
            raise InvalidToken("the access token has expired")
        if iat > now + LEEWAY_SECONDS or nbf > now + LEEWAY_SECONDS:
            raise InvalidToken("the access token is not yet valid")


def verify_jws(
    token: str,
    signer: Signer,
    issuer: str,
    *,
    accepted_typ: set[str],
    required: tuple[str, ...],
    audience: str | None = None,
) -> dict[str, Any]:
    """The claims of a compact JWS this server signed (RS256, a published kid, our issuer, `typ` among
    `accepted_typ`, and `audience` when given); InvalidToken otherwise. Times are the caller's to check.
    No network, file or database access happens here."""
    import jwt  # lazily: PyJWT pulls in cryptography, which JWKS and pages never need

    if not token or len(token) > MAX_TOKEN_LENGTH or not _COMPACT_JWS.match(token):
        raise InvalidToken("the access token is malformed")
    _reject_duplicate_members(token)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("the access token is malformed") from None
    if header.get("alg") != "RS256" or str(header.get("typ", "")).lower() not in accepted_typ:
        raise InvalidToken("the access token has the wrong type or algorithm")
    if any(name in header for name in _UNSUPPORTED_HEADERS):
        raise InvalidToken("the access token carries unsupported header parameters")
    kid = header.get("kid")
    key = signer.public_key(kid) if isinstance(kid, str) and len(kid) <= 64 else None
    if key is None:
        raise InvalidToken("the access token was not signed by a key of this server")
    try:
        return jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=audience,
            issuer=issuer,
            options={
                "require": list(required),
                "verify_aud": audience is not None,
                "strict_aud": audience is not None,
                # time claims are checked by the caller against the one clock every layer reads
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(_describe(error)) from None
    except (ValueError, TypeError, json.JSONDecodeError):
        raise InvalidToken("the access token is malformed") from None


def _reject_duplicate_members(token: str) -> None:
    """A header or payload naming a member twice is refused: parsers disagree on which one wins."""
    for segment in token.split(".")[:2]:
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
            strict_json.loads(raw)
        except (binascii.Error, ValueError):
            raise InvalidToken("the access token is malformed") from None


def _describe(error: Exception) -> str:
    import jwt

    if isinstance(error, jwt.ExpiredSignatureError):
        return "the access token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "the access token is not yet valid"
    if isinstance(error, jwt.InvalidAudienceError):
        return "the access token is not meant for this resource"
    if isinstance(error, jwt.InvalidIssuerError):
        return "the access token was issued by another server"
    return "the access token is invalid"
