"""RFC 7009 token revocation: a refresh or access token ends its whole grant.

Rules (pinned in tests/test_revocation.py):
- A refresh token (even one already rotated) or an access token (signature checked, expiry
  ignored) revokes its grant: every refresh and access token of that authorization.
- Unknown, malformed, expired, already revoked tokens and authorization codes: 200, nothing changes
  (§2.2). The token's shape tells the types apart, so `token_type_hint` never changes the outcome.
- Another client's token: not revoked. A confidential client gets 400 unauthorized_client
  (§2.1 "the request is refused"); a public client, which anyone can impersonate, gets the
  silent 200, so its answer reveals nothing about the token.
- A client_credentials access token has no grant to end: while it is valid the answer is
  400 unsupported_token_type (§2.2.1); it stops working at its `exp` (ACCESS_TOKEN_SECONDS).
- A store failure raises StoreUnavailable (503): there is never a 200 without the flag written.
"""

from __future__ import annotations

from typing import Callable, Protocol

from chalicelib import audit
from chalicelib.crypto.secrets import digest
from chalicelib.oauth.clients import ClientDirectory
from chalicelib.oauth.errors import InvalidToken, UnauthorizedClient, UnsupportedTokenType
from chalicelib.oauth.introspection import looks_like_jwt, token_parameter
from chalicelib.oauth.tokens import MAX_TOKEN_LENGTH, AccessTokens
from chalicelib.records import ClientRecord, RefreshTokenRecord


class RevocationStore(Protocol):
    def get_refresh_token(self, token_digest: str) -> RefreshTokenRecord | None: ...
    def revoke_grant(self, client_id: str, grant_id: str) -> None: ...


class Revoker:
    def __init__(self, store: RevocationStore, clients: ClientDirectory, access_tokens: AccessTokens,
                 clock: Callable[[], int]) -> None:
        self.store = store
        self.clients = clients
        self.access_tokens = access_tokens
        self.clock = clock

    def handle(self, form: dict[str, str], authorization: str | None, source: str | None = None) -> None:
        """POST /revoke: authenticate the client, then revoke (RFC 7009 §2.1)."""
        caller = self.clients.authenticate(authorization, form, source)
        self.revoke(caller, token_parameter(form))

    def revoke(self, caller: ClientRecord, token: str) -> None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return
        if looks_like_jwt(token):
            self._access_token(caller, token)
        else:
            self._refresh_token(caller, token)

    @staticmethod
    def _owned_by(caller: ClientRecord, client_id: str) -> bool:
        if caller.client_id == client_id:
            return True
        if caller.confidential:
            raise UnauthorizedClient("the token was not issued to this client")
        return False

    def _refresh_token(self, caller: ClientRecord, token: str) -> None:
        record = self.store.get_refresh_token(digest(token))  # None when unknown or expired
        if record is not None and self._owned_by(caller, record.client_id):
            self.store.revoke_grant(record.client_id, record.grant_id)
            audit.emit("token.revoked", client_id=record.client_id, grant_id=record.grant_id,
                       token_type="refresh_token")

    def _access_token(self, caller: ClientRecord, token: str) -> None:
        try:
            claims = self.access_tokens.verify(token, None, allow_expired=True)  # any resource's token
        except InvalidToken:
            return
        if not self._owned_by(caller, claims.client_id):
            return
        if claims.grant_id is not None:
            self.store.revoke_grant(claims.grant_owner, claims.grant_id)
            audit.emit("token.revoked", client_id=claims.client_id, grant_id=claims.grant_id,
                       token_type="access_token")
        elif self.clock() < claims.exp:
            raise UnsupportedTokenType(
                "client_credentials access tokens cannot be revoked; they expire at their exp"
            )
