"""RFC 8693 token exchange, for a resource server that calls another one on the user's behalf.

An MCP server may not pass an agent's token through to another API (it is for the MCP server, and
audience binding refuses it elsewhere). Instead, the client that acts for the MCP server's resource
(the resource server record names it: `client_id`), if the operator allowed it the token-exchange
grant, trades the agent's token for one whose audience is the other resource:

- `subject_token` is an access token this server issued for a user, whose `aud` is the caller's own
  resource; `subject_token_type` is `urn:ietf:params:oauth:token-type:access_token`.
- `resource` or `audience` names the target resource server (none: the Clipron API); it must differ
  from the subject token's audience.
- `scope` (default: all that fit) must lie within both the subject token's scope and what the target
  accepts.
- The new token keeps `sub` and the grant, names the caller in `act` (nesting any earlier actor,
  §4.1), never outlives the subject token, and is refused once the grant is no longer in force
  (oauth/standing.py: revoked, access withdrawn, app or user deleted or disabled; one read).

Errors (§2.2.2): a missing, invalid or unacceptable subject token is `invalid_request`; an unknown
target is `invalid_target`; a widened scope `invalid_scope`; a client without the grant type
`unauthorized_client` (checked by the token endpoint). No refresh token is issued.
"""

from __future__ import annotations

from typing import Any, Callable

from chalicelib.oauth.errors import InvalidRequest, InvalidScope, InvalidToken
from chalicelib.oauth.resource_servers import InvalidTarget, ResourceDirectory
from chalicelib.oauth.scopes import format_scope, parse_scope
from chalicelib.oauth.standing import grant_in_force
from chalicelib.oauth.tokens import CLIENT_SUBJECT_PREFIX, AccessTokenClaims, AccessTokens
from chalicelib.records import ClientRecord, ResourceServerRecord
from chalicelib.store.dynamo import DynamoStore

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


def exchange(
    store: DynamoStore,
    resources: ResourceDirectory,
    access_tokens: AccessTokens,
    clock: Callable[[], int],
    client: ClientRecord,
    form: dict[str, str],
) -> dict[str, Any]:
    """The RFC 8693 §2.2.1 response body, or an OAuthError."""
    _check_types(form)
    target = _target(form, resources)
    subject = _subject(form, resources, access_tokens, client)
    if target.identifier == subject.aud:
        raise InvalidTarget("the target must be another resource than the subject token's")
    scope = _scope(form.get("scope"), subject, target)
    now = clock()
    in_force = subject.grant_id is not None and grant_in_force(
        store, subject.grant_owner, subject.sub, subject.grant_id, now) is not None  # revoked, withdrawn, disabled
    if not in_force:
        raise InvalidRequest("the subject token's authorization was revoked or has expired")
    actor: dict[str, Any] = {"sub": CLIENT_SUBJECT_PREFIX + client.client_id, "client_id": client.client_id}
    if subject.act:
        actor["act"] = subject.act  # the earlier actors of a chain (§4.1)
    issued = access_tokens.issue(
        sub=subject.sub,
        client_id=client.client_id,
        scope=scope,
        audience=target.identifier,
        grant_id=subject.grant_id,
        lifetime=min(target.access_token_seconds, subject.exp - now),  # never outlives the subject token
        act=actor,
        grant_client_id=subject.grant_owner,
    )
    return {
        "access_token": issued.token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": scope,
    }


def _check_types(form: dict[str, str]) -> None:
    if not form.get("subject_token"):
        raise InvalidRequest("subject_token is required")
    if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
        raise InvalidRequest("subject_token_type must be urn:ietf:params:oauth:token-type:access_token")
    if "actor_token" in form or "actor_token_type" in form:
        raise InvalidRequest("actor tokens are not supported: the authenticated client is the actor")
    requested = form.get("requested_token_type")
    if requested is not None and requested != ACCESS_TOKEN_TYPE:
        raise InvalidRequest("only access tokens can be requested")


def _target(form: dict[str, str], resources: ResourceDirectory) -> ResourceServerRecord:
    """The resource server named by `resource` or `audience` (both: the same one); the Clipron API by default."""
    resource, audience = form.get("resource"), form.get("audience")
    if resource is not None and audience is not None and resource != audience:
        raise InvalidTarget("resource and audience name different targets")
    named = resource if resource is not None else audience
    return resources.default if named is None else resources.require(named)


def _subject(
    form: dict[str, str], resources: ResourceDirectory, access_tokens: AccessTokens, client: ClientRecord
) -> AccessTokenClaims:
    """The subject token's claims when it is a live user token for the caller's own resource."""
    try:
        claims = access_tokens.verify(form["subject_token"], None)
    except InvalidToken:
        raise InvalidRequest("the subject token is invalid or expired") from None
    if claims.is_client_token:
        raise InvalidRequest("the subject token must be issued for a user")
    server = resources.get(claims.aud)
    if server is None or server.client_id is None or server.client_id != client.client_id:
        raise InvalidRequest("the subject token is not for a resource this client acts for")
    return claims


def _scope(requested: str | None, subject: AccessTokenClaims, target: ResourceServerRecord) -> str:
    """Within both the subject token's scope and the target's accepted scopes (RFC 8693 §2.1)."""
    available = set(subject.scope) & target.scopes.keys()
    scopes = parse_scope(requested)
    if scopes is None:
        if not available:
            raise InvalidScope("the subject token holds no scope the target accepts")
        return format_scope(sorted(available))
    if not set(scopes) <= available:
        raise InvalidScope("the requested scope exceeds the subject token's or the target's")
    return format_scope(scopes)
