"""OpenID Connect ID tokens (Core §2, §3.1.3.6): minted with the signing-key ring, RS256, never `none`.

An ID token tells the client who signed in and when; it is not an access token (typ `JWT`, audience
the client), so nothing that checks access tokens accepts one, and `verify_hint` accepts only these.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, Callable

from chalicelib.oauth.errors import InvalidRequest, InvalidToken
from chalicelib.oauth.tokens import Signer, verify_jws
from chalicelib.settings import Settings

ID_TOKEN_TYP = "JWT"
AMR_PASSWORD = ["pwd"]  # RFC 8176: the user signed in with a password


@dataclass(frozen=True)
class Authentication:
    """The login an ID token reports: who, when, in which session, and the client's nonce."""

    user_id: str
    auth_time: int
    sid: str | None = None
    nonce: str | None = None


@dataclass(frozen=True)
class HintedUser:
    """What a valid id_token_hint tells the server: the user, and the client it was issued to."""

    sub: str
    client_id: str


def at_hash(access_token: str) -> str:
    """The left half of the access token's SHA-256, base64url without padding (Core §3.1.3.6, RS256)."""
    left = hashlib.sha256(access_token.encode("ascii")).digest()[:16]
    return base64.urlsafe_b64encode(left).rstrip(b"=").decode("ascii")


class IdTokens:
    def __init__(self, signer: Signer, settings: Settings, clock: Callable[[], int]) -> None:
        self.signer = signer
        self.issuer = settings.issuer
        self.lifetime = settings.id_token_seconds  # ID_TOKEN_SECONDS
        self.clock = clock

    def issue(
        self, login: Authentication, client_id: str, access_token: str, extra: dict[str, Any] | None = None
    ) -> str:
        """A signed ID token for `client_id`; `extra` adds claims the client asked for (claims parameter)."""
        now = self.clock()
        claims: dict[str, Any] = {
            **(extra or {}),
            "iss": self.issuer,
            "sub": login.user_id,
            "aud": client_id,
            "azp": client_id,
            "exp": now + self.lifetime,
            "iat": now,
            "auth_time": login.auth_time,
            "amr": AMR_PASSWORD,
            "at_hash": at_hash(access_token),
        }
        if login.nonce is not None:
            claims["nonce"] = login.nonce
        if login.sid is not None:
            claims["sid"] = login.sid
        return self.signer.sign(claims, ID_TOKEN_TYP)

    def verify_hint(self, token: str) -> HintedUser:
        """An ID token this server issued, even an expired one (id_token_hint, Core §3.1.2.1; RP-Initiated
        Logout §2); InvalidRequest otherwise. Access tokens are refused by their type."""
        try:
            claims = verify_jws(token, self.signer, self.issuer, accepted_typ={"jwt"}, required=("sub", "aud"))
        except InvalidToken:
            raise InvalidRequest("the id_token_hint is not a valid ID token from this server") from None
        aud = claims["aud"]
        if not isinstance(aud, str) or not isinstance(claims["sub"], str) or "client_id" in claims:
            raise InvalidRequest("the id_token_hint is not a valid ID token from this server")
        return HintedUser(sub=claims["sub"], client_id=aud)
