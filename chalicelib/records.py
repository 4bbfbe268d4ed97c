"""The records every layer works with (web, oauth, store): plain data, free of PynamoDB and of any layer.

Every secret (code, refresh token, session id, client secret, registration token) appears here
only as a SHA-256 digest; passwords only as argon2id hashes; private keys only as KMS envelopes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, fields
from typing import Any

CONFIDENTIAL_METHODS = ("client_secret_basic", "client_secret_post")
AUTH_METHODS = (*CONFIDENTIAL_METHODS, "none")
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693
# what a client may register for (RFC 7591, Developer Settings); token exchange is an operator's grant
REGISTRABLE_GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
# what the token endpoint serves and the metadata advertises
GRANT_TYPES = (*REGISTRABLE_GRANT_TYPES, TOKEN_EXCHANGE)


class StoreError(Exception):
    """Base of the store's errors."""


class StoreUnavailable(StoreError):
    """DynamoDB or KMS failed or timed out: the request may be retried (503)."""


class ConditionFailed(StoreError):
    """A conditional write lost: the item was already used, revoked, expired or present."""


class AlreadyExists(ConditionFailed):
    """A put that must create found the key taken."""


class QuotaReached(StoreError):
    """A write would take a count past its limit (e.g. an owner's applications): nothing was written."""


class LimitReached(StoreError):
    """A throttle counter read together with an item is at its limit (`slot` names which)."""

    def __init__(self, slot: CounterSlot) -> None:
        super().__init__("limit reached")
        self.slot = slot


def live(expires_at: int | None, now: int) -> bool:
    """DynamoDB TTL deletes late (moto never): an item at or past its expiry is absent."""
    return expires_at is None or now < expires_at


def is_metadata_client_id(client_id: str) -> bool:
    """A Client ID Metadata Document client (its id is an https URL): it has no client item to delete,
    disable or bulk-revoke, only a cached copy of its document that may lapse while its grants live on."""
    return client_id.startswith("https://")


def new_generation() -> str:
    """A fresh generation id (see Authority): random, so a re-created item never revives old grants."""
    return secrets.token_urlsafe(12)


@dataclass(kw_only=True)
class Authority:
    """The generations of the authority a code, grant or refresh token was issued under.

    A generation is a random id on the client, the user and the consent: bulk revocation replaces
    it (or deletes the item), so everything issued under the old one stops at once, in O(1).
    None means the item never had one (nothing was ever bulk-revoked); it matches only an absent
    generation. Issuance conditions on these in its transaction and every refresh/introspection
    compares them (oauth/standing.py), so a withdrawal and an issuance are ordered by one condition.
    """

    client_generation: str | None = None
    user_generation: str | None = None
    consent_generation: str | None = None

    def authority(self) -> dict[str, str | None]:
        """These generations as keyword arguments, to carry them from a code to its grant and tokens."""
        return {f.name: getattr(self, f.name) for f in fields(Authority)}


@dataclass
class ClientSecret:
    digest: str
    expires_at: int | None = None  # set on the old secret during a rotation overlap


@dataclass
class ClientRecord:
    client_id: str
    name: str
    redirect_uris: list[str]
    scopes: list[str]
    grant_types: list[str]
    auth_method: str
    app_type: str = "web"
    owner_id: str | None = None
    secrets: list[ClientSecret] = field(default_factory=list)
    registration_token_digest: str | None = None
    created_at: int = 0
    disabled: bool = False
    resource_server: bool = False  # operator-flagged: may introspect tokens of every client
    # True only for apps an operator created or vouched for (CLI, the local demo). Apps registered by
    # anyone else (POST /register, Developer Settings, Client ID Metadata Documents) stay False: the
    # consent page marks them "not verified by Clipron", their names may not imitate Clipron, and
    # errors are not redirected to them automatically before the user signed in (RFC 9700 §4.11.2).
    # Items stored before this field read as False: unknown means not verified.
    verified: bool = False
    # An openly registered client expires when unused (touched on use); a metadata-document client's
    # cached copy expires with its cache lifetime. None: never.
    expires_at: int | None = None
    post_logout_redirect_uris: list[str] = field(default_factory=list)  # OIDC RP-Initiated Logout
    generation: str | None = None  # replaced by an operator's "revoke the client's grants" (see Authority)

    @property
    def confidential(self) -> bool:
        return self.auth_method in CONFIDENTIAL_METHODS

    def live_secrets(self, now: int) -> list[ClientSecret]:
        """The secrets that still authenticate: the current one, and an old one within its rotation overlap."""
        return [s for s in self.secrets if live(s.expires_at, now)]


@dataclass
class ResourceServerRecord:
    """A protected resource tokens can be issued for (RFC 8707): its identifier becomes the token's `aud`."""

    identifier: str  # an absolute URI without fragment
    name: str
    scopes: dict[str, str]  # the scopes it accepts -> what the consent page says about each
    access_token_seconds: int
    created_at: int = 0
    client_id: str | None = None  # the confidential client that acts for it (introspection, token exchange)


@dataclass
class OwnedApp:
    owner_id: str
    client_id: str
    name: str
    created_at: int


@dataclass
class UserRecord:
    user_id: str
    email: str
    password_hash: str
    created_at: int
    disabled: bool = False
    name: str = ""  # OpenID Connect profile claims (UserInfo)
    email_verified: bool = False
    updated_at: int = 0
    generation: str | None = None  # replaced by "revoke the user's grants" and a password reset (see Authority)


@dataclass
class SessionRecord:
    session_digest: str
    user_id: str
    auth_time: int
    expires_at: int
    sid: str | None = None  # the OpenID Connect session id in ID tokens (not a secret, unlike the cookie)
    user_generation: str | None = None  # a session outlives no bulk revocation of its user


@dataclass
class OpenIdRequest:
    """The OpenID Connect parts of an authorization request (OIDC Core §3.1.2.1)."""

    nonce: str | None = None
    max_age: int | None = None
    login_hint: str | None = None
    hint_subject: str | None = None  # the `sub` of a valid id_token_hint
    id_token_claims: list[str] = field(default_factory=list)
    userinfo_claims: list[str] = field(default_factory=list)


@dataclass
class AuthorizationRequestRecord:
    """A validated /authorize request parked while the user logs in and consents."""

    request_digest: str
    client_id: str
    redirect_uri: str
    redirect_uri_given: bool
    scope: str
    state: str | None
    code_challenge: str | None
    prompt: list[str]
    created_at: int
    expires_at: int
    resources: list[str] = field(default_factory=list)  # RFC 8707; empty: the Clipron API
    oidc: OpenIdRequest | None = None

    def __post_init__(self) -> None:
        if isinstance(self.oidc, dict):  # as a store reads it back (JSON)
            self.oidc = OpenIdRequest(**self.oidc)


@dataclass
class CodeRecord(Authority):
    code_digest: str
    client_id: str
    redirect_uri: str
    redirect_uri_given: bool
    user_id: str
    scope: str
    code_challenge: str | None
    grant_id: str
    auth_time: int
    expires_at: int
    used_at: int | None = None
    resources: list[str] = field(default_factory=list)  # RFC 8707; empty: the Clipron API
    nonce: str | None = None  # bound to the code like the PKCE challenge (OIDC Core §3.1.2.1)
    sid: str | None = None
    id_token_claims: list[str] = field(default_factory=list)  # asked for by the claims parameter
    userinfo_claims: list[str] = field(default_factory=list)


@dataclass
class GrantRecord(Authority):
    """The family: every refresh and access token of one authorization belongs to one grant."""

    grant_id: str
    client_id: str
    user_id: str
    scope: str
    created_at: int
    expires_at: int
    revoked_at: int | None = None
    resources: list[str] = field(default_factory=list)  # RFC 8707; empty: the Clipron API
    auth_time: int | None = None  # the login behind the grant: refreshed ID tokens keep it (OIDC Core §12.2)
    sid: str | None = None
    userinfo_claims: list[str] = field(default_factory=list)

    def active(self, now: int) -> bool:
        return self.revoked_at is None and live(self.expires_at, now)


@dataclass
class RefreshTokenRecord(Authority):
    token_digest: str
    grant_id: str
    client_id: str
    user_id: str
    scope: str
    issued_at: int
    expires_at: int
    used_at: int | None = None
    successor_digest: str | None = None
    grace_response: str | None = None  # the rotated response, encrypted under a key only the holder has
    grant_expires_at: int | None = None  # the grant's absolute expiry, carried so a refresh needs no grant read
    resources: list[str] = field(default_factory=list)  # the grant's resources (RFC 8707), carried likewise
    auth_time: int | None = None  # carried from the grant, so a refreshed ID token needs no grant read
    sid: str | None = None


@dataclass
class ConsentRecord:
    user_id: str
    client_id: str
    scopes: list[str]
    granted_at: int
    resources: list[str] = field(default_factory=list)  # RFC 8707 resources consented to; empty: the Clipron API
    generation: str | None = None  # new each time the consent is created; revoking access deletes it


@dataclass
class SigningKeyRecord:
    kid: str
    status: str  # next | current | retired
    alg: str
    public_jwk: dict[str, Any]
    private_envelope: dict[str, str]
    created_at: int
    retired_at: int | None = None


@dataclass
class RegistrationTokenRecord:
    token_digest: str
    created_at: int
    expires_at: int
    description: str = ""


@dataclass(frozen=True)
class CounterSlot:
    """One unit of a throttle counter: `key`'s count in the current `window_seconds` window, at most `limit`."""

    key: str
    window_seconds: int
    limit: int


@dataclass
class Standing:
    """A grant and the three items its authority rests on, read together (None: absent or expired)."""

    grant: GrantRecord | None
    client: ClientRecord | None
    user: UserRecord | None
    consent: ConsentRecord | None
