"""The authorization endpoint (RFC 6749 §4.1, RFC 7636, RFC 9207, RFC 9700): free of Chalice.

Order matters: client_id and redirect_uri are validated first, and until both are trusted every
error is shown to the user (UntrustedRequest), never redirected. Every later error goes back to
the validated redirect URI (RedirectError) with `state` and `iss`.

A request that needs the user (login or consent) is parked under the digest of a random id; the
id travels in the login and consent URLs and the request is consumed by a conditional delete, so
each parked request yields at most one decision.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol
from urllib.parse import quote, urlencode

from chalicelib import audit
from chalicelib.crypto.secrets import digest, new_id, new_token
from chalicelib.oauth import pkce
from chalicelib.oauth import scopes as scope_rules
from chalicelib.oauth.cimd import is_metadata_url
from chalicelib.oauth.clients import ClientDirectory, match_redirect_uri
from chalicelib.oauth.errors import (
    AccessDenied,
    InvalidRequest,
    InvalidScope,
    OAuthError,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from chalicelib.oauth.id_tokens import IdTokens
from chalicelib.oauth.resource_servers import MAX_RESOURCES, InvalidTarget, ResourceDirectory
from chalicelib.oauth.throttle import Limit, Throttle, Throttled, source_of, subject_of
from chalicelib.oauth.userinfo import USER_CLAIMS
from chalicelib.records import (
    AuthorizationRequestRecord,
    ClientRecord,
    CodeRecord,
    ConditionFailed,
    ConsentRecord,
    OpenIdRequest,
    ResourceServerRecord,
    SessionRecord,
    StoreUnavailable,
)
from chalicelib.settings import Settings

MAX_STATE = 2048
MAX_REDIRECT_URI = 2000
MAX_REQUEST_ID = 128
PROMPTS = frozenset({"none", "login", "consent"})
REPEATABLE = frozenset({"resource"})  # RFC 8707 §2: may name several resources
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
MAX_NONCE = 512
MAX_LOGIN_HINT = 320
MAX_AGE_LIMIT = 10 * 365 * 86400
PARKED_QUOTA_REACHED = "too many pending authorization requests from this network; retry later"


class LoginRequired(OAuthError):
    error = "login_required"


class ConsentRequired(OAuthError):
    error = "consent_required"


class RequestNotSupported(OAuthError):
    error = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    error = "request_uri_not_supported"


class UntrustedRequest(Exception):
    """The client or its redirect URI cannot be trusted: tell the user, never redirect (RFC 6749 §4.1.2.1)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ParkedRequestGone(Exception):
    """The parked request is unknown, already used or expired (replay, back button, too slow)."""


class AuthorizationStore(Protocol):
    def put_authorization_request(self, request: AuthorizationRequestRecord) -> None: ...
    def get_authorization_request(self, request_digest: str) -> AuthorizationRequestRecord | None: ...
    def consume_authorization_request(self, request_digest: str) -> None: ...
    def put_code(self, code: CodeRecord) -> None: ...
    def get_consent(self, user_id: str, client_id: str) -> ConsentRecord | None: ...
    def save_consent_scopes(
        self, user_id: str, client_id: str, scopes: list[str], granted_at: int, resources: list[str] | None = None
    ) -> str: ...


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated request: everything the code will be bound to."""

    client: ClientRecord
    redirect_uri: str
    redirect_uri_given: bool
    scopes: list[str]
    state: str | None
    code_challenge: str | None
    prompt: frozenset[str]
    requested_at: int
    resources: tuple[ResourceServerRecord, ...] = ()  # RFC 8707; empty: the Clipron API
    oidc: OpenIdRequest = field(default_factory=OpenIdRequest)

    @property
    def scope(self) -> str:
        return scope_rules.format_scope(self.scopes)

    @property
    def resource_ids(self) -> list[str]:
        return [server.identifier for server in self.resources]


class RedirectError(Exception):
    """An error the client learns at its validated redirect URI (RFC 6749 §4.1.2.1, RFC 9207)."""

    def __init__(self, error: OAuthError, client: ClientRecord, redirect_uri: str, state: str | None) -> None:
        super().__init__(error.error)
        self.error = error
        self.client = client
        self.redirect_uri = redirect_uri
        self.state = state

    def location(self, issuer: str) -> str:
        params = [("error", self.error.error)]
        if self.error.description:
            params.append(("error_description", self.error.description))
        return redirect_location(self.redirect_uri, params, self.state, issuer)


def redirect_location(redirect_uri: str, params: list[tuple[str, str]], state: str | None, issuer: str) -> str:
    """The redirect URI with the response parameters appended, keeping its own query (RFC 6749 §3.1.2)."""
    pairs = [*params, *([("state", state)] if state is not None else []), ("iss", issuer)]
    extra = urlencode(pairs, quote_via=quote, safe="")
    if "?" not in redirect_uri:
        return f"{redirect_uri}?{extra}"
    return redirect_uri + ("" if redirect_uri.endswith(("?", "&")) else "&") + extra


# --- validation ---------------------------------------------------------------------------------


def _group(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    """Single values by name (an empty value counts as absent), and the names sent more than once."""
    values: dict[str, str] = {}
    seen: set[str] = set()
    duplicated: set[str] = set()
    for name, value in pairs:
        if name in REPEATABLE:
            continue
        if name in seen:
            duplicated.add(name)
        seen.add(name)
        if value != "":
            values[name] = value
    for name in duplicated:
        values.pop(name, None)
    return values, duplicated


def trusted_client(
    values: dict[str, str], duplicated: set[str], clients: ClientDirectory
) -> tuple[ClientRecord, str]:
    """The client and the redirect URI to use, or UntrustedRequest. StoreUnavailable propagates (503)."""
    if "client_id" in duplicated:
        raise UntrustedRequest("The parameter client_id was sent more than once.")
    if "redirect_uri" in duplicated:
        raise UntrustedRequest("The parameter redirect_uri was sent more than once.")
    client_id = values.get("client_id")
    if client_id is None:
        raise UntrustedRequest("The request does not say which application is asking (client_id is missing).")
    client = clients.get(client_id)
    if client is None and is_metadata_url(client_id):
        raise UntrustedRequest("Clipron could not use the metadata document that identifies this application.")
    if client is None:
        raise UntrustedRequest("The application that sent you here is not registered with Clipron.")
    requested = values.get("redirect_uri")
    if requested is not None and (len(requested) > MAX_REDIRECT_URI or "#" in requested):
        raise UntrustedRequest("The redirect address of this request is malformed.")
    redirect_uri = match_redirect_uri(client, requested)
    if redirect_uri is None:
        if requested is None:
            raise UntrustedRequest("The request must name one of the application's redirect addresses.")
        raise UntrustedRequest("The redirect address of this request is not registered for this application.")
    return client, redirect_uri


def validate(
    pairs: list[tuple[str, str]], clients: ClientDirectory, now: int, resources: ResourceDirectory,
    id_tokens: IdTokens | None = None,
) -> AuthorizationRequest:
    """Validate an authorization request: UntrustedRequest before the client is trusted, RedirectError after."""
    values, duplicated = _group(pairs)
    client, redirect_uri = trusted_client(values, duplicated, clients)
    state = values.get("state")

    def fail(error: OAuthError, with_state: bool = True) -> RedirectError:
        return RedirectError(error, client, redirect_uri, state if with_state else None)

    if duplicated:
        return_state = "state" not in duplicated
        raise fail(InvalidRequest("a parameter was sent more than once"), return_state)
    if state is not None and len(state) > MAX_STATE:
        raise fail(InvalidRequest("state must be at most 2048 characters"), with_state=False)
    if "request" in values:  # OIDC Core §6: refused by name, never silently ignored
        raise fail(RequestNotSupported("request objects are not supported"))
    if "request_uri" in values:
        raise fail(RequestUriNotSupported("request_uri is not supported"))
    response_type = values.get("response_type")
    if response_type is None:
        raise fail(InvalidRequest("response_type is required"))
    if response_type != "code":
        raise fail(UnsupportedResponseType("only response_type=code is supported"))
    if "authorization_code" not in client.grant_types:
        raise fail(UnauthorizedClient("this client may not use the authorization code grant"))
    try:
        servers = _requested_resources(pairs, resources)
        requested_scopes = _scopes_for_resources(values.get("scope"), client, servers or (resources.default,))
    except OAuthError as error:
        raise fail(error) from None
    code_challenge = _code_challenge(values, client, fail)
    prompt = frozenset(values.get("prompt", "").split(" ")) & PROMPTS
    if "none" in prompt and len(prompt) > 1:
        raise fail(InvalidRequest("prompt=none cannot be combined with other prompts"))
    if "select_account" in prompt:  # one account per browser: choosing one means signing in again
        prompt = prompt | {"login"}
    try:
        oidc = openid_request(values, id_tokens)
    except OAuthError as error:
        raise fail(error) from None
    return AuthorizationRequest(
        client=client,
        redirect_uri=redirect_uri,
        redirect_uri_given="redirect_uri" in values,
        scopes=requested_scopes,
        state=state,
        code_challenge=code_challenge,
        prompt=prompt,
        requested_at=now,
        resources=servers,
        oidc=oidc,
    )


def _requested_resources(
    pairs: list[tuple[str, str]], resources: ResourceDirectory
) -> tuple[ResourceServerRecord, ...]:
    """The resource servers the request names (RFC 8707 §2), in order, each once; invalid_target otherwise."""
    named = list(dict.fromkeys(value for name, value in pairs if name == "resource"))
    if len(named) > MAX_RESOURCES:
        raise InvalidTarget("too many resources in one request")
    return tuple(resources.require(identifier) for identifier in named)


def _scopes_for_resources(
    requested: str | None, client: ClientRecord, servers: tuple[ResourceServerRecord, ...]
) -> list[str]:
    """The client's scopes that the named resources accept (all of them when none is requested), plus the
    OpenID Connect scopes, which are about the user, not a resource; every named resource must accept at
    least one, or no token for it could ever be issued."""
    accepted = set(scope_rules.IDENTITY_SCOPES).union(*(server.scopes for server in servers))
    scopes = scope_rules.resolve(requested, [scope for scope in client.scopes if scope in accepted])
    if any(not set(scopes) & server.scopes.keys() for server in servers):
        raise InvalidScope("a requested resource accepts none of the requested scopes")
    return scopes


def openid_request(values: dict[str, str], id_tokens: IdTokens | None) -> OpenIdRequest:
    """nonce, max_age, login_hint, id_token_hint and claims (OIDC Core §3.1.2.1, §5.5). display,
    ui_locales, claims_locales and acr_values are accepted and ignored (one language, one login method)."""
    nonce = values.get("nonce")
    if nonce is not None and len(nonce) > MAX_NONCE:
        raise InvalidRequest("nonce is too long")
    max_age = values.get("max_age")
    if max_age is not None and not (max_age.isascii() and max_age.isdigit() and int(max_age) <= MAX_AGE_LIMIT):
        raise InvalidRequest("max_age must be a number of seconds")
    login_hint = values.get("login_hint")
    hint = values.get("id_token_hint")
    if hint is not None and id_tokens is None:
        raise InvalidRequest("the id_token_hint is not a valid ID token from this server")
    id_token_claims, userinfo_claims = _requested_claims(values.get("claims"))
    return OpenIdRequest(
        nonce=nonce,
        max_age=int(max_age) if max_age is not None else None,
        login_hint=login_hint if login_hint is not None and len(login_hint) <= MAX_LOGIN_HINT else None,
        hint_subject=id_tokens.verify_hint(hint).sub if hint is not None and id_tokens is not None else None,
        id_token_claims=id_token_claims,
        userinfo_claims=userinfo_claims,
    )


def _requested_claims(value: str | None) -> tuple[list[str], list[str]]:
    """The user claims the claims parameter names for the ID token and for UserInfo (OIDC Core §5.5);
    claims Clipron does not have are ignored, as §5.5 allows."""
    if value is None:
        return [], []
    try:
        request = json.loads(value)
    except ValueError:
        raise InvalidRequest("the claims parameter must be a JSON object") from None
    if not isinstance(request, dict) or not all(isinstance(request.get(k, {}), dict) for k in ("id_token", "userinfo")):
        raise InvalidRequest("the claims parameter must be a JSON object")

    def names(member: str) -> list[str]:
        return [name for name in USER_CLAIMS if name in request.get(member, {})]

    return names("id_token"), names("userinfo")


def _code_challenge(
    values: dict[str, str], client: ClientRecord, fail: Callable[[OAuthError], RedirectError]
) -> str | None:
    """PKCE (RFC 7636, RFC 9700 §2.1.1): S256 only, required for public clients."""
    challenge = values.get("code_challenge")
    method = values.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise fail(InvalidRequest("code_challenge_method was sent without code_challenge"))
        if not client.confidential:
            raise fail(InvalidRequest("code challenge required (PKCE with S256)"))
        return None
    if method is None:
        raise fail(InvalidRequest("code_challenge_method is required and must be S256 (plain is not allowed)"))
    if method != pkce.METHOD:
        raise fail(InvalidRequest("code_challenge_method must be S256"))
    if not pkce.valid_challenge(challenge):
        raise fail(InvalidRequest("code_challenge must be 43 base64url characters"))
    return challenge


# --- the flow -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What the browser does next: `redirect` to the client (code or error), `login` / `consent`, or
    `confirm`: an error for a redirect URI we do not trust, shown on our page with a link the user
    may follow (`location`), never an automatic redirect (RFC 9700 §4.11.2)."""

    kind: str  # redirect | login | consent | confirm
    location: str | None = None
    request_id: str | None = None
    error: OAuthError | None = None
    client: ClientRecord | None = None


class AuthorizationFlow:
    def __init__(
        self,
        store: AuthorizationStore,
        clients: ClientDirectory,
        resources: ResourceDirectory,
        settings: Settings,
        clock: Callable[[], int],
        id_tokens: IdTokens,  # verifies id_token_hint
        throttle: Throttle,
    ) -> None:
        self.store = store
        self.throttle = throttle
        # PARKED_REQUESTS_PER_SOURCE per AUTHORIZATION_REQUEST_SECONDS: one source cannot fill the table
        self.park_limit = Limit("parked-source", settings.parked_requests_per_source,
                                settings.authorization_request_seconds)
        self.clients = clients
        self.resources = resources
        self.issuer = settings.issuer
        self.code_seconds = settings.code_seconds
        self.request_seconds = settings.authorization_request_seconds
        self.clock = clock
        self.id_tokens = id_tokens

    # -- entry: /authorize --
    def start(self, pairs: list[tuple[str, str]], session: SessionRecord | None, source: str | None = None) -> Step:
        """Validate and decide. The fast path (logged in, consent remembered) parks nothing; `source` is
        the caller's address, for the parked-request quota.

        UntrustedRequest (client or redirect URI unknown) propagates: the caller shows it."""
        try:
            request = validate(pairs, self.clients, self.clock(), self.resources, self.id_tokens)
            with unavailable_redirects(request):
                return self._start(request, session, source)
        except RedirectError as error:
            return self._error_step(error, session)

    def _start(self, request: AuthorizationRequest, session: SessionRecord | None, source: str | None) -> Step:
        # prompt=login and max_age=0 ask for a login now, even when the session began this second
        login_asked = "login" in request.prompt or request.oidc.max_age == 0
        if "none" in request.prompt:
            if not self.signed_in_for(request, session):
                raise RedirectError(LoginRequired("the user is not signed in"), request.client, request.redirect_uri,
                                    request.state)
            assert session is not None
            consent = self._remembered_consent(request, session.user_id)
            if consent is None:
                error = ConsentRequired("the user has not approved this application")
                raise RedirectError(error, request.client, request.redirect_uri, request.state)
            return self._redirect_with_code(request, session, consent.generation)
        if login_asked or not self.signed_in_for(request, session):
            return Step("login", request_id=self._park(request, source))
        assert session is not None
        consent = self._remembered_consent(request, session.user_id) if "consent" not in request.prompt else None
        if consent is not None:
            return self._redirect_with_code(request, session, consent.generation)
        return Step("consent", request_id=self._park(request, source))

    # -- resumption after login: /consent?request=... --
    def resume(self, request_id: str, session: SessionRecord | None) -> tuple[Step, AuthorizationRequest]:
        """Continue a parked request: login first if needed, a remembered consent issues the code."""
        request = self.parked(request_id)
        if not self.signed_in_for(request, session, resumed=True):
            return Step("login", request_id=request_id), request
        assert session is not None
        try:
            with unavailable_redirects(request):
                consent = None if "consent" in request.prompt else self._remembered_consent(request, session.user_id)
                if consent is not None:
                    self._consume(request_id)
                    return self._redirect_with_code(request, session, consent.generation), request
        except RedirectError as unavailable:
            return self._error_step(unavailable, session), request
        return Step("consent", request_id=request_id), request

    def decide(self, request_id: str, session: SessionRecord, allow: bool) -> Step:
        """The user's decision on the consent page: the redirect with the code or the error. Single use."""
        request = self.parked(request_id)
        if not self.signed_in_for(request, session, resumed=True):
            raise ParkedRequestGone()
        self._consume(request_id)
        try:
            if not allow:
                raise RedirectError(AccessDenied("the user denied the request"), request.client, request.redirect_uri,
                                    request.state)
            with unavailable_redirects(request):
                generation = self._remember_consent(request, session.user_id)
                return self._redirect_with_code(request, session, generation)
        except RedirectError as error:
            return self._error_step(error, session)

    def _error_step(self, error: RedirectError, session: SessionRecord | None) -> Step:
        """An error for the client: redirected automatically only to a redirect URI we trust (RFC 9700
        §4.11.2): an operator-verified client's, or, for a self-registered one, once the user is signed
        in and has approved that client before. Otherwise our page tells the user and offers the link."""
        location = error.location(self.issuer)
        if self._trusts_redirect(error.client, session):
            return Step("redirect", location=location)
        return Step("confirm", location=location, error=error.error, client=error.client)

    def _trusts_redirect(self, client: ClientRecord, session: SessionRecord | None) -> bool:
        if client.verified:
            return True
        if session is None:
            return False
        try:
            return self.store.get_consent(session.user_id, client.client_id) is not None
        except StoreUnavailable:
            return False  # cannot tell: the safe answer is our own page

    def signed_in_for(
        self, request: AuthorizationRequest, session: SessionRecord | None, resumed: bool = False
    ) -> bool:
        """A session the request accepts (OIDC Core §3.1.2.1): once resumed, one that signed in during this
        request; otherwise one when the client asked for no fresh login, its max_age allows the login's age
        and its id_token_hint names the same user."""
        if session is None:
            return False
        if resumed and session.auth_time >= request.requested_at:
            return True
        if "login" in request.prompt:
            return False
        hinted = request.oidc.hint_subject
        if hinted is not None and hinted != session.user_id:
            return False
        max_age = request.oidc.max_age
        return max_age is None or self.clock() - session.auth_time <= max_age

    def parked(self, request_id: str | None) -> AuthorizationRequest:
        """The parked request (unexpired, not yet consumed), re-checked against the client as it is now;
        ParkedRequestGone otherwise, never a redirect.

        The owner may have changed the app while the user was signing in: a redirect URI no longer
        registered is never used (the request is gone), and a withdrawn scope is dropped (the token
        response names the scope actually granted, RFC 6749 §3.3); nothing left to grant: gone.
        """
        if not request_id or len(request_id) > MAX_REQUEST_ID:
            raise ParkedRequestGone()
        record = self.store.get_authorization_request(digest(request_id))
        if record is None:
            raise ParkedRequestGone()
        client = self.clients.get(record.client_id)
        if client is None or "authorization_code" not in client.grant_types:
            raise ParkedRequestGone()
        servers = tuple(self.resources.get(identifier) for identifier in record.resources)
        if None in servers:  # a resource server deleted while the user was signing in
            raise ParkedRequestGone()
        if match_redirect_uri(client, record.redirect_uri) != record.redirect_uri:
            raise ParkedRequestGone()
        scopes = [s for s in record.scope.split(" ") if s in client.scopes]
        if not scopes:
            raise ParkedRequestGone()
        return AuthorizationRequest(
            client=client,
            redirect_uri=record.redirect_uri,
            redirect_uri_given=record.redirect_uri_given,
            scopes=scopes,
            state=record.state,
            code_challenge=record.code_challenge,
            prompt=frozenset(record.prompt),
            requested_at=record.created_at,
            resources=servers,  # type: ignore[arg-type]
            oidc=record.oidc or OpenIdRequest(),
        )

    # -- internals --
    def _park(self, request: AuthorizationRequest, source: str | None) -> str:
        request_id = new_token()
        record = AuthorizationRequestRecord(
            request_digest=digest(request_id),
            client_id=request.client.client_id,
            redirect_uri=request.redirect_uri,
            redirect_uri_given=request.redirect_uri_given,
            scope=request.scope,
            state=request.state,
            code_challenge=request.code_challenge,
            prompt=sorted(request.prompt),
            created_at=request.requested_at,
            expires_at=request.requested_at + self.request_seconds,
            resources=request.resource_ids,
            oidc=request.oidc,
        )
        try:  # the parked-request quota, before anything is stored
            self.throttle.take((self.park_limit, subject_of(source_of(source))))
        except Throttled:  # the server cannot take this request now: RFC 6749 §4.1.2.1
            raise RedirectError(TemporarilyUnavailable(PARKED_QUOTA_REACHED), request.client,
                                request.redirect_uri, request.state) from None
        self.store.put_authorization_request(record)
        return request_id

    def _consume(self, request_id: str) -> None:
        try:
            self.store.consume_authorization_request(digest(request_id))
        except ConditionFailed:
            raise ParkedRequestGone() from None

    def _remembered_consent(self, request: AuthorizationRequest, user_id: str) -> ConsentRecord | None:
        """The user's consent when it already covers every requested scope and may answer for the user
        (only when the client's identity is assured); None otherwise."""
        if not consent_may_be_remembered(request.client, request.redirect_uri):
            return None
        consent = self.store.get_consent(user_id, request.client.client_id)
        covered = (consent is not None and set(request.scopes) <= set(consent.scopes)
                   and self._audiences(request.resource_ids) <= self._audiences(consent.resources))
        return consent if covered else None

    def _audiences(self, resource_ids: list[str]) -> set[str]:
        """Resources consented to or asked for; none named means the Clipron API."""
        return set(resource_ids or [self.resources.default.identifier])

    def _remember_consent(self, request: AuthorizationRequest, user_id: str) -> str:
        """Save what the user approved; returns the consent's generation (the code is issued under it)."""
        previous = self.store.get_consent(user_id, request.client.client_id)
        granted = set(request.scopes) | set(previous.scopes if previous else [])
        allowed = set(request.client.scopes)  # a scope the client lost is not remembered
        audiences = self._audiences(request.resource_ids) | (self._audiences(previous.resources) if previous else set())
        generation = self.store.save_consent_scopes(user_id, request.client.client_id, sorted(granted & allowed),
                                                    self.clock(), sorted(audiences))
        audit.emit("consent.granted", user_id=user_id, client_id=request.client.client_id, scope=request.scope)
        return generation

    def _redirect_with_code(self, request: AuthorizationRequest, session: SessionRecord,
                            consent_generation: str | None) -> Step:
        code = self.issue_code(request, session, consent_generation)
        return Step("redirect", location=redirect_location(request.redirect_uri, [("code", code)], request.state,
                                                           self.issuer))

    def issue_code(self, request: AuthorizationRequest, session: SessionRecord, consent_generation: str | None) -> str:
        """A 256-bit code, stored only as its digest, bound to everything /token must check, including
        the generations of the client, user and consent it is issued under (records.Authority)."""
        code = new_token()
        now = self.clock()
        record = CodeRecord(
            code_digest=digest(code),
            client_id=request.client.client_id,
            redirect_uri=request.redirect_uri,
            redirect_uri_given=request.redirect_uri_given,
            user_id=session.user_id,
            scope=request.scope,
            code_challenge=request.code_challenge,
            grant_id=new_id(),
            auth_time=session.auth_time,
            expires_at=now + self.code_seconds,
            resources=request.resource_ids,
            nonce=request.oidc.nonce,
            sid=session.sid,
            id_token_claims=request.oidc.id_token_claims,
            userinfo_claims=request.oidc.userinfo_claims,
            client_generation=request.client.generation,
            user_generation=session.user_generation,
            consent_generation=consent_generation,
        )
        self.store.put_code(record)
        audit.emit("code.issued", user_id=record.user_id, client_id=record.client_id, grant_id=record.grant_id)
        return code


@contextlib.contextmanager
def unavailable_redirects(request: AuthorizationRequest) -> Iterator[None]:
    """Once the client and its redirect URI are trusted, a storage failure goes back to the client as
    temporarily_unavailable with state and iss (RFC 6749 §4.1.2.1, F-16), not to a dead-end page."""
    try:
        yield
    except StoreUnavailable:
        raise RedirectError(TemporarilyUnavailable(), request.client, request.redirect_uri, request.state) from None


def consent_may_be_remembered(client: ClientRecord, redirect_uri: str) -> bool:
    """The consent policy for repeated requests (RFC 6749 §10.2, RFC 8252 §8.6).

    A request is approved silently from a remembered consent only when the server can tell it comes
    from the client that was approved: a confidential client (it authenticates at /token, so a code
    sent to an impersonator is useless), or a public client whose redirect URI is a claimed https
    address (only its owner receives the code there). A public client redirecting to a loopback or a
    private-use scheme URI can be impersonated by any app on the device: the user is asked every time
    (and prompt=none answers consent_required).
    """
    return client.confidential or redirect_uri.startswith("https://")


def describe_scopes(request: AuthorizationRequest) -> list[tuple[str, str]]:
    """Each scope with what the consent page says about it (a named resource's own wording first)."""
    wording: dict[str, str] = {}
    for server in reversed(request.resources):
        wording.update(server.scopes)
    return [(scope, wording.get(scope) or description) for scope, description in scope_rules.describe(request.scopes)]
