"""The UserInfo endpoint (OIDC Core §5.3) and the one mapping from a user to OpenID Connect claims.

UserInfo checks the grant behind the access token (one read) and reads the user (one read): it is
not a hot path, and a token whose grant was revoked (reuse of a code, Connected apps) must stop
answering here at once, not at its expiry.
"""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.oauth.errors import InsufficientScope, InvalidToken
from chalicelib.oauth.scopes import OPENID
from chalicelib.oauth.tokens import AccessTokens
from chalicelib.records import GrantRecord, UserRecord
from chalicelib.settings import Settings

# Core §5.4: the claims each scope releases (Clipron keeps no address or phone number)
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": ("name", "updated_at"),
    "email": ("email", "email_verified"),
}
USER_CLAIMS = tuple(name for names in SCOPE_CLAIMS.values() for name in names)


class UserInfoStore(Protocol):
    def get_grant(self, client_id: str, grant_id: str) -> GrantRecord | None: ...
    def get_user(self, user_id: str) -> UserRecord | None: ...


def user_claims(user: UserRecord, names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The named claims this user has (an unset name is left out rather than sent empty)."""
    values: dict[str, Any] = {
        "name": user.name or None,
        "email": user.email,
        "email_verified": user.email_verified,
        "updated_at": user.updated_at or user.created_at,
    }
    return {name: values[name] for name in names if values.get(name) is not None}


def scope_claim_names(scopes: list[str]) -> list[str]:
    return [name for scope in scopes for name in SCOPE_CLAIMS.get(scope, ())]


class UserInfo:
    def __init__(self, store: UserInfoStore, access_tokens: AccessTokens, settings: Settings) -> None:
        self.store = store
        self.access_tokens = access_tokens
        self.audience = settings.api_audience

    def claims(self, token: str) -> dict[str, Any]:
        """The signed-in user's claims the token's scope allows; InvalidToken / InsufficientScope otherwise."""
        access = self.access_tokens.verify(token, self.audience)
        if access.is_client_token or access.grant_id is None:
            raise InvalidToken("the access token was not issued for a user")
        if OPENID not in access.scope:
            raise InsufficientScope(OPENID)
        grant = self.store.get_grant(access.client_id, access.grant_id)
        if grant is None or not grant.active(self.access_tokens.clock()) or grant.user_id != access.sub:
            raise InvalidToken("the access token was revoked")
        user = self.store.get_user(access.sub)
        if user is None or user.disabled:
            raise InvalidToken("the access token was revoked")
        names = [*scope_claim_names(access.scope), *grant.userinfo_claims]
        return {"sub": user.user_id, **user_claims(user, list(dict.fromkeys(names)))}
