"""RFC 7662 token introspection: is this token active, and what does it carry?

Who may ask: confidential clients only (public clients cannot keep a secret, so anyone could
pose as one). A client learns about its own tokens; a client the operator flagged as a resource
server (`ClientRecord.resource_server`) learns about every client's tokens. Any other token reads
as `{"active": false}`, exactly like an unknown one, so introspection is no oracle for other
clients' tokens. Access tokens of every resource server (RFC 8707 audiences) are answered; the
client a resource server record names (its `client_id`) also learns about that resource's tokens.

A token is active only while what it was issued under is in force (oauth/standing.py): its grant
is neither revoked nor expired, and its client, user and consent still stand, enabled, with the
generations the grant recorded. A client_credentials token has no grant: it is active while its
client exists and is enabled (a deleted machine app's tokens are inactive at once).

Cost: an access token is verified offline (signature, issuer, type, times), then its grant, client,
user and consent are read by key with one consistent BatchGetItem (revocation must be visible); a
client_credentials token costs one consistent GetItem (its client). A refresh token costs two calls
(the token, then the same batch).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from chalicelib.crypto.secrets import digest
from chalicelib.oauth.clients import ClientDirectory
from chalicelib.oauth.errors import InvalidClient, InvalidRequest, InvalidToken
from chalicelib.oauth.resource_servers import ResourceDirectory
from chalicelib.oauth.standing import client_in_force, grant_in_force
from chalicelib.oauth.tokens import MAX_TOKEN_LENGTH, AccessTokens
from chalicelib.records import ClientRecord, GrantRecord, RefreshTokenRecord, ResourceServerRecord

ACCESS_TOKEN_TYPE = "Bearer"
REFRESH_TOKEN_TYPE = "refresh_token"


class IntrospectionStore(Protocol):
    def get_grant(self, client_id: str, grant_id: str) -> GrantRecord | None: ...
    def get_refresh_token(self, token_digest: str) -> RefreshTokenRecord | None: ...


def token_parameter(form: dict[str, str]) -> str:
    """The `token` of a revocation or introspection request (RFC 7009 §2.1, RFC 7662 §2.1)."""
    token = form.get("token")
    if token is None:
        raise InvalidRequest("the token parameter is required")
    return token


def inactive() -> dict[str, Any]:
    """RFC 7662 §2.2: nothing but `active: false`, whatever the reason."""
    return {"active": False}


def looks_like_jwt(token: str) -> bool:
    """Refresh tokens and codes are base64url (no dot); an access token is a compact JWS (two dots).

    Telling them apart by shape means the hint never decides the outcome (RFC 7009 §2.1: a server
    that detects the type itself MAY ignore it), and an access token never costs a refresh-token read.
    """
    return token.count(".") == 2


class Introspector:
    def __init__(self, store: IntrospectionStore, clients: ClientDirectory, access_tokens: AccessTokens,
                 resources: ResourceDirectory, clock: Callable[[], int]) -> None:
        self.store = store
        self.clients = clients
        self.access_tokens = access_tokens
        self.resources = resources
        self.clock = clock

    def handle(self, form: dict[str, str], authorization: str | None, source: str | None = None) -> dict[str, Any]:
        """POST /introspect: authenticate the client, then answer for the token (RFC 7662 §2)."""
        caller = self.clients.authenticate(authorization, form, source)
        return self.introspect(caller, token_parameter(form))

    def introspect(self, caller: ClientRecord, token: str) -> dict[str, Any]:
        if not caller.confidential:
            raise InvalidClient("public clients cannot introspect tokens")
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return inactive()
        if looks_like_jwt(token):
            return self._access_token(caller, token)
        return self._refresh_token(caller, token)

    def _in_force(self, client_id: str, user_id: str, grant_id: str) -> bool:
        return grant_in_force(self.store, client_id, user_id, grant_id, self.clock()) is not None

    @staticmethod
    def _may_inspect(caller: ClientRecord, token_client_id: str, server: ResourceServerRecord | None = None) -> bool:
        """The token's own client, an operator-flagged resource server, or the client acting for the
        token's resource (RFC 8707 audience) may learn about it."""
        if caller.resource_server or caller.client_id == token_client_id:
            return True
        return server is not None and server.client_id is not None and server.client_id == caller.client_id

    def _access_token(self, caller: ClientRecord, token: str) -> dict[str, Any]:
        try:
            claims = self.access_tokens.verify(token, None)  # a token for any resource of this server
        except InvalidToken:
            return inactive()
        server = self.resources.get(claims.aud)  # cached; a deleted resource server's tokens are inactive
        if server is None or not self._may_inspect(caller, claims.client_id, server):
            return inactive()
        if claims.grant_id is None:  # client_credentials: active while its client exists and is enabled
            if not client_in_force(self.store.get_client(claims.client_id)):
                return inactive()
        elif not self._in_force(claims.grant_owner, claims.sub, claims.grant_id):
            return inactive()
        return {
            "active": True,
            "scope": " ".join(claims.scope),
            "client_id": claims.client_id,
            "sub": claims.sub,
            "aud": claims.aud,
            "iss": claims.iss,
            "exp": claims.exp,
            "iat": claims.iat,
            "jti": claims.jti,
            "token_type": ACCESS_TOKEN_TYPE,
        }

    def _refresh_token(self, caller: ClientRecord, token: str) -> dict[str, Any]:
        record = self.store.get_refresh_token(digest(token))  # None when unknown or expired
        if record is None or record.used_at is not None or not self._may_inspect(caller, record.client_id):
            return inactive()
        if not self._in_force(record.client_id, record.user_id, record.grant_id):
            return inactive()
        return {
            "active": True,
            "scope": record.scope,
            "client_id": record.client_id,
            "sub": record.user_id,
            "exp": record.expires_at,
            "iat": record.issued_at,
            "token_type": REFRESH_TOKEN_TYPE,
        }
