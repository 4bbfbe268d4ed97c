"""The token endpoint's protocol (RFC 6749 §4.1.3, §4.4, §6): one handler per grant type.

Parameters arrive parsed (form body only, no duplicates); the result is the JSON body of a 200, or an
OAuthError. Order of work: grant type, client authentication (before any code or refresh token is
read), then the grant. While a client-authentication limit is full every answer is the same 429, so a
request that authenticated passes the limit gate (clients.LimitGate) before it answers anything: the
code exchange and the refresh read the two throttle counters in the same call as the code or the
refresh token (2 DynamoDB calls in all); any other answer reads them first. Tokens are signed before
the single transaction that records them, and leave only after it committed, so a failed write leaves
nothing issued.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from chalicelib import audit
from chalicelib.crypto.sealing import open_with_token, seal_with_token
from chalicelib.crypto.secrets import digest, new_token
from chalicelib.oauth import pkce
from chalicelib.oauth.clients import ClientDirectory, LimitGate
from chalicelib.oauth.errors import (
    ClientAuthenticationThrottled,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from chalicelib.oauth.id_tokens import Authentication, IdTokens
from chalicelib.oauth.resource_servers import ResourceDirectory, scopes_for
from chalicelib.oauth.scopes import OPENID, format_scope, parse_scope, resolve
from chalicelib.oauth.standing import current_scope, grant_in_force
from chalicelib.oauth.token_exchange import exchange
from chalicelib.oauth.tokens import CLIENT_SUBJECT_PREFIX, AccessTokens
from chalicelib.oauth.userinfo import user_claims
from chalicelib.records import (
    GRANT_TYPES,
    TOKEN_EXCHANGE,
    ClientRecord,
    CodeRecord,
    ConditionFailed,
    CounterSlot,
    GrantRecord,
    RefreshTokenRecord,
    ResourceServerRecord,
    Standing,
)
from chalicelib.settings import Settings

MAX_TOKEN_PARAMETER = 256  # codes and refresh tokens are 43 characters; longer values never reach the table
GRACE_PURPOSE = "clipron-refresh-grace-v1"


class TokenStore(Protocol):
    def get_code(
        self, code_digest: str, include_used: bool = True, limits: Sequence[CounterSlot] = ()
    ) -> CodeRecord | None: ...
    def redeem_code(self, code: CodeRecord, grant: GrantRecord, refresh_token: RefreshTokenRecord | None) -> None: ...
    def get_grant(self, client_id: str, grant_id: str) -> GrantRecord | None: ...
    def revoke_grant(self, client_id: str, grant_id: str) -> None: ...
    def get_standing(self, client_id: str, user_id: str, grant_id: str) -> Standing: ...
    def get_refresh_token(
        self, token_digest: str, limits: Sequence[CounterSlot] = ()
    ) -> RefreshTokenRecord | None: ...
    def rotate_refresh_token(self, old: RefreshTokenRecord, new: RefreshTokenRecord, grace_response: str) -> None: ...


@dataclass
class TokenEndpoint:
    store: TokenStore
    clients: ClientDirectory
    access_tokens: AccessTokens
    resources: ResourceDirectory  # RFC 8707 audiences
    id_tokens: IdTokens  # OpenID Connect ID tokens, on the access tokens' key ring
    settings: Settings
    clock: Callable[[], int]

    def handle(self, form: dict[str, str], authorization: str | None, source: str | None = None) -> dict[str, Any]:
        """The RFC 6749 §5.1 body for a token request, or an OAuthError."""
        grant_type = form.get("grant_type") or None
        if grant_type is None:
            raise InvalidRequest("grant_type is required")
        if grant_type not in GRANT_TYPES:
            raise UnsupportedGrantType("this server does not support this grant type")
        client, gate = self.clients.admit(authorization, form, source)
        try:
            body = self._grant(grant_type, client, form, gate)
        except ClientAuthenticationThrottled:
            raise  # the gate itself refused
        except OAuthError:
            gate.check()  # while a limit is full, a refusal must not tell a right secret from a wrong one
            raise
        gate.check()  # a grant that read nothing (client_credentials, token exchange) checks it here
        return body

    def _grant(self, grant_type: str, client: ClientRecord, form: dict[str, str], gate: LimitGate) -> dict[str, Any]:
        if grant_type in ("client_credentials", TOKEN_EXCHANGE) and not client.confidential:
            raise InvalidClient("this grant needs a confidential client")
        if grant_type not in client.grant_types:
            raise UnauthorizedClient("this client may not use this grant type")
        if grant_type == "authorization_code":
            return self.authorization_code(client, form, gate)
        if grant_type == "refresh_token":
            return self.refresh_token(client, form, gate)
        if grant_type == "client_credentials":
            return self.client_credentials(client, form)
        return self.token_exchange(client, form)

    # -- authorization_code (RFC 6749 §4.1.3, RFC 7636 §4.6) --
    def authorization_code(self, client: ClientRecord, form: dict[str, str], gate: LimitGate) -> dict[str, Any]:
        code = self._redeemable_code(client, form, gate)
        granted = _still_allowed(code.scope, client)
        server = self.resources.pick(form.get("resource"), code.resources)
        scope = _narrowed(form.get("scope"), format_scope(scopes_for(server, granted.split())))
        now = self.clock()
        grant = GrantRecord(
            grant_id=code.grant_id,
            client_id=client.client_id,
            user_id=code.user_id,
            scope=granted,
            created_at=now,
            expires_at=now + self.settings.refresh_absolute_seconds,
            resources=code.resources,
            auth_time=code.auth_time,
            sid=code.sid,
            userinfo_claims=code.userinfo_claims,
            **code.authority(),  # the redemption conditions on it; refreshes and introspection compare it
        )
        body = self._user_access_token(grant, scope, server)  # signed before anything is written
        if _wants_id_token(code.scope, form.get("scope")):
            login = Authentication(code.user_id, code.auth_time, code.sid, code.nonce)
            extra = self._requested_claims(code.user_id, code.id_token_claims)
            body["id_token"] = self._id_token(login, client.client_id, body["access_token"], extra)
        refresh = None
        if "refresh_token" in client.grant_types:
            body["refresh_token"] = token = new_token()
            refresh = self._refresh_record(token, grant, grant.expires_at)
        try:
            self.store.redeem_code(code, grant, refresh)
        except ConditionFailed:
            self._lost_redemption(code)
        audit.emit("code.redeemed", user_id=code.user_id, client_id=code.client_id, grant_id=code.grant_id)
        return body

    def _redeemable_code(self, client: ClientRecord, form: dict[str, str], gate: LimitGate) -> CodeRecord:
        """The unused code this request proves it may redeem; a used one revokes its grant."""
        presented = _required(form, "code")
        verifier = form.get("code_verifier") or None
        if verifier is not None and not pkce.valid_verifier(verifier):
            raise InvalidRequest("code_verifier must be 43 to 128 unreserved characters")
        if len(presented) > MAX_TOKEN_PARAMETER:
            raise InvalidGrant("the code is invalid, expired or already used")
        code = gate.checked(lambda limits: self.store.get_code(digest(presented), limits=limits))
        if code is None:
            raise InvalidGrant("the code is invalid, expired or already used")
        # Every binding is checked before reuse: a replay with bad parameters must not revoke (DoS).
        _check_code_bindings(code, client, form.get("redirect_uri") or None, verifier)
        if code.used_at is not None:
            self._replayed(code)
        return code

    def _replayed(self, code: CodeRecord) -> None:
        """A used code again (RFC 6749 §4.1.2): revoke what it issued."""
        self.store.revoke_grant(code.client_id, code.grant_id)
        audit.emit("code.replayed", user_id=code.user_id, client_id=code.client_id, grant_id=code.grant_id)
        raise InvalidGrant("the code was already used; the tokens issued from it are revoked")

    def _lost_redemption(self, code: CodeRecord) -> None:
        """The transaction's condition failed: the code was used meanwhile (reuse), expired, or the authority
        it was issued under was withdrawn since (access revoked, app deleted, client or user disabled)."""
        current = self.store.get_code(code.code_digest)
        if current is not None and current.used_at is not None:
            self._replayed(code)
        self.clients.forget(code.client_id)  # this instance's copy of the client may be what changed
        raise InvalidGrant("the code is invalid, expired or already used")

    # -- refresh_token (RFC 6749 §6, RFC 9700 §4.14.2) --
    def refresh_token(self, client: ClientRecord, form: dict[str, str], gate: LimitGate) -> dict[str, Any]:
        presented = _required(form, "refresh_token")
        requested = form.get("scope") or None
        resource = form.get("resource")
        record = None
        if len(presented) <= MAX_TOKEN_PARAMETER:
            record = gate.checked(lambda limits: self.store.get_refresh_token(digest(presented), limits=limits))
        if record is None:  # absent, or past its idle/absolute expiry (a grace never revives it)
            raise InvalidGrant("the refresh token is invalid or expired")
        if record.client_id != client.client_id:  # foreign client: refused, the family is left alone
            raise InvalidGrant("the refresh token was not issued to this client")
        if record.used_at is not None:
            return self._repeated_refresh(record, presented, requested, resource)
        return self._rotate(record, _still_allowed(record.scope, client), presented, requested, resource)

    def _rotate(
        self, record: RefreshTokenRecord, granted: str, presented: str, requested: str | None, resource: str | None
    ) -> dict[str, Any]:
        """A new access token and successor (within what the client may still ask for); the response is
        sealed on the spent token for the grace window."""
        server = self.resources.pick(resource, record.resources)  # any resource of the grant, never a new one
        scope = _narrowed(requested, format_scope(scopes_for(server, granted.split())))
        now = self.clock()
        absolute = record.grant_expires_at or self._grant_expiry(record)
        grant = GrantRecord(record.grant_id, record.client_id, record.user_id, granted, now, absolute,
                            resources=record.resources, auth_time=record.auth_time, sid=record.sid,
                            **record.authority())
        body = self._user_access_token(grant, scope, server)
        if _wants_id_token(record.scope, requested) and record.auth_time is not None:
            # OIDC Core §12.2: same iss, sub, aud, azp and auth_time as at the login; a new iat; no nonce
            login = Authentication(record.user_id, record.auth_time, record.sid)
            body["id_token"] = self._id_token(login, record.client_id, body["access_token"])
        body["refresh_token"] = token = new_token()
        successor = self._refresh_record(token, grant, absolute)
        sealed = _seal_grace(presented, body, _repeat_key(requested, resource), now + body["expires_in"])
        try:
            self.store.rotate_refresh_token(record, successor, sealed)
        except ConditionFailed:
            current = self.store.get_refresh_token(record.token_digest)
            if current is not None and current.used_at is not None:  # lost the race to a concurrent refresh
                return self._repeated_refresh(current, presented, requested, resource)
            raise InvalidGrant("the refresh token is invalid or expired, or its grant was revoked") from None
        audit.emit("refresh.rotated", user_id=record.user_id, client_id=record.client_id, grant_id=record.grant_id)
        return body

    def _repeated_refresh(
        self, record: RefreshTokenRecord, presented: str, requested: str | None, resource: str | None
    ) -> dict[str, Any]:
        """A rotated token again: the same response within the grace window, otherwise reuse revokes the grant."""
        now = self.clock()
        assert record.used_at is not None
        if now < record.used_at + self.settings.refresh_replay_seconds and record.grace_response:
            replay = self._grace_replay(record, presented, _repeat_key(requested, resource), now)
            if replay is not None:
                return replay
        self.store.revoke_grant(record.client_id, record.grant_id)
        audit.emit("refresh.reuse_detected", user_id=record.user_id, client_id=record.client_id,
                   grant_id=record.grant_id)
        raise InvalidGrant("the refresh token was already used; its grant is revoked")

    def _grace_replay(
        self, record: RefreshTokenRecord, presented: str, requested: str | None, now: int
    ) -> dict[str, Any] | None:
        """The sealed response, when its successor is unused and grant and user are active; None means reuse."""
        successor = self.store.get_refresh_token(record.successor_digest) if record.successor_digest else None
        if successor is None or successor.used_at is not None:
            return None
        if grant_in_force(self.store, record.client_id, record.user_id, record.grant_id, now) is None:
            raise InvalidGrant("the grant of this refresh token was revoked or has expired")
        opened = open_with_token(presented, GRACE_PURPOSE, record.grace_response or "")
        if opened is None:
            return None
        sealed = json.loads(opened)
        if sealed["requested_scope"] != requested:  # a different request is not a repeat; nothing is issued
            raise InvalidGrant("the refresh token was already used")
        body = dict(sealed["body"])
        body["expires_in"] = max(0, int(sealed["access_expires_at"]) - now)
        return body

    def _grant_expiry(self, record: RefreshTokenRecord) -> int:
        """Tokens written without the grant's absolute expiry: read it from the grant."""
        grant = self.store.get_grant(record.client_id, record.grant_id)
        if grant is None or not grant.active(self.clock()):
            raise InvalidGrant("the grant of this refresh token was revoked or has expired")
        return grant.expires_at

    # -- client_credentials (RFC 6749 §4.4, RFC 8707) --
    def client_credentials(self, client: ClientRecord, form: dict[str, str]) -> dict[str, Any]:
        resource = form.get("resource")
        server = self.resources.default if resource is None else self.resources.require(resource)
        scope = format_scope(resolve(form.get("scope") or None, [s for s in client.scopes if s in server.scopes]))
        issued = self.access_tokens.issue(
            sub=CLIENT_SUBJECT_PREFIX + client.client_id,
            client_id=client.client_id,
            scope=scope,
            audience=server.identifier,
            grant_id=None,  # no grant: nothing to refresh or revoke as a family; the token lives until exp
            lifetime=server.access_token_seconds,
        )
        return {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in, "scope": scope}

    # -- token exchange (RFC 8693) --
    def token_exchange(self, client: ClientRecord, form: dict[str, str]) -> dict[str, Any]:
        return exchange(self.store, self.resources, self.access_tokens, self.clock, client, form)

    # -- shared --
    def _user_access_token(self, grant: GrantRecord, scope: str, server: ResourceServerRecord) -> dict[str, Any]:
        issued = self.access_tokens.issue(
            sub=grant.user_id,
            client_id=grant.client_id,
            scope=scope,
            audience=server.identifier,
            grant_id=grant.grant_id,
            lifetime=server.access_token_seconds,
        )
        return {"access_token": issued.token, "token_type": "Bearer", "expires_in": issued.expires_in, "scope": scope}

    def _id_token(
        self, login: Authentication, client_id: str, access_token: str, extra: dict[str, Any] | None = None
    ) -> str:
        assert self.id_tokens is not None
        return self.id_tokens.issue(login, client_id, access_token, extra)

    def _requested_claims(self, user_id: str, names: list[str]) -> dict[str, Any]:
        """Claims the claims parameter asked for in the ID token: one user read, only when asked."""
        if not names:
            return {}
        user = self.store.get_user(user_id)
        return user_claims(user, names) if user is not None else {}

    def _refresh_record(self, token: str, grant: GrantRecord, absolute: int) -> RefreshTokenRecord:
        now = self.clock()
        return RefreshTokenRecord(
            token_digest=digest(token),
            grant_id=grant.grant_id,
            client_id=grant.client_id,
            user_id=grant.user_id,
            scope=grant.scope,  # the grant's scope, even when this access token was narrowed
            issued_at=now,
            expires_at=min(now + self.settings.refresh_idle_seconds, absolute),
            grant_expires_at=absolute,
            resources=grant.resources,
            auth_time=grant.auth_time,
            sid=grant.sid,
            **grant.authority(),  # so a refresh conditions on it without reading the grant
        )


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name) or None
    if value is None:
        raise InvalidRequest("code is required" if name == "code" else "refresh_token is required")
    return value


def _check_code_bindings(
    code: CodeRecord, client: ClientRecord, redirect_uri: str | None, verifier: str | None
) -> None:
    if code.client_id != client.client_id:
        raise InvalidGrant("the code was not issued to this client")
    if code.redirect_uri_given and redirect_uri is None:
        raise InvalidRequest("redirect_uri is required: the authorization request carried one")
    if redirect_uri is not None and redirect_uri != code.redirect_uri:
        raise InvalidGrant("redirect_uri differs from the authorization request")
    if code.code_challenge is None:
        if verifier is not None:  # PKCE downgrade (RFC 9700 §4.8.2)
            raise InvalidRequest("code_verifier was sent but the authorization request had no code_challenge")
        return
    if verifier is None:
        raise InvalidGrant("code_verifier is required")
    if not pkce.verifier_matches(verifier, code.code_challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")


def _wants_id_token(granted: str, requested: str | None) -> bool:
    """An ID token goes with every token response of a grant holding openid (OIDC Core §3.1.3.3, §12.2),
    whichever resource the access token is for, unless the request narrowed the scope without openid."""
    narrowed = parse_scope(requested)
    return OPENID in granted.split() and (narrowed is None or OPENID in narrowed)


def _still_allowed(scope: str, client: ClientRecord) -> str:
    """A grant keeps only the scopes its client may still ask for (its owner can withdraw one)."""
    allowed = current_scope(scope, client)
    if not allowed:
        raise InvalidGrant("none of the granted scopes is still allowed for this client")
    return allowed


def _narrowed(requested: str | None, granted: str) -> str:
    """The requested scope when it stays within the granted one (RFC 6749 §6); the granted scope by default."""
    scopes = parse_scope(requested)
    if scopes is None:
        return granted
    allowed = granted.split()
    wider = [s for s in scopes if s not in allowed]
    if wider:
        raise InvalidScope("the requested scope exceeds what was granted")
    return format_scope(scopes)


def _repeat_key(requested_scope: str | None, resource: str | None) -> str | None:
    """What makes a repeated refresh the same request: its scope and, when named, its resource."""
    return requested_scope if resource is None else f"{requested_scope or ''}\n{resource}"


def _seal_grace(presented: str, body: dict[str, Any], requested: str | None, access_expires_at: int) -> str:
    """The response, encrypted under a key derived from the presented refresh token (only its holder has it)."""
    payload = {"body": body, "requested_scope": requested, "access_expires_at": access_expires_at}
    return seal_with_token(presented, GRACE_PURPOSE, json.dumps(payload, separators=(",", ":")).encode())

