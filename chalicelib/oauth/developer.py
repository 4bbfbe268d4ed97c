"""Developer Settings and Connected apps: who may see and change an application, and what each change does.

Only an application's owner can see or change it; anyone else gets AppNotFound (a 404, so client
ids of other people's apps cannot be probed). Every change drops the client from this instance's
cache; other instances see it within the cache TTL (F-21).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from chalicelib import audit
from chalicelib.oauth import registration
from chalicelib.oauth import scopes as scope_rules
from chalicelib.oauth.cimd import MAX_METADATA_URL, app_ref, client_id_from_ref, document_host, is_metadata_url
from chalicelib.oauth.clients import MAX_CLIENT_ID, valid_client_id
from chalicelib.oauth.errors import InvalidClientMetadata, InvalidRedirectUri, InvalidRequest, TemporarilyUnavailable
from chalicelib.oauth.standing import current_scope
from chalicelib.records import ClientRecord, ConditionFailed, ConsentRecord, OwnedApp, QuotaReached
from chalicelib.settings import Settings

# the choices Developer Settings offers, in the order the form shows them
APP_TYPE_LABELS = {
    "web": "Web application (server-side, keeps a client secret)",
    "native": "Single-page or native app (public client, PKCE, no secret)",
    "machine": "Machine to machine (client credentials, no user)",
}


class AppNotFound(Exception):
    """No such application for this user (absent, or owned by someone else: both look the same)."""


class DeveloperStore(Protocol):
    def get_client(self, client_id: str) -> ClientRecord | None: ...
    def create_client(self, client: ClientRecord, max_owned: int | None = None) -> None: ...
    def update_client(
        self, client_id: str, change: Callable[[ClientRecord], None], attempts: int = 3
    ) -> ClientRecord | None: ...
    def delete_client(self, client: ClientRecord) -> None: ...
    def list_owned_apps(self, owner_id: str) -> list[OwnedApp]: ...
    def list_consents(self, user_id: str) -> list[ConsentRecord]: ...
    def get_consent(self, user_id: str, client_id: str) -> ConsentRecord | None: ...
    def delete_consent(self, user_id: str, client_id: str) -> None: ...
    def get_metadata_client(self, client_id: str) -> ClientRecord | None: ...


class ClientCache(Protocol):
    def forget(self, client_id: str) -> None: ...


@dataclass(frozen=True)
class AppForm:
    """What the Developer Settings form submits (already split into fields by the route)."""

    name: str
    app_type: str
    redirect_uris: list[str]
    scopes: list[str]
    post_logout_redirect_uris: list[str] = field(default_factory=list)  # OpenID Connect RP-Initiated Logout


@dataclass(frozen=True)
class ConnectedApp:
    client_id: str
    name: str
    scopes: list[tuple[str, str]]  # (scope, what it lets the app do)
    granted_at: int
    verified: bool = False  # operator-verified (ClientRecord.verified); the page marks the others

    @property
    def ref(self) -> str:
        """The client id as one URL path segment (a metadata-document client's id is an https URL)."""
        return app_ref(self.client_id)


def redirect_uri_lines(text: str) -> list[str]:
    """One redirect URI per line; blank lines ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def form_metadata(form: AppForm) -> dict[str, Any]:
    """The RFC 7591 metadata a Developer Settings form stands for (validated by registration.validate_metadata)."""
    if form.app_type not in registration.APP_TYPES:
        raise InvalidClientMetadata("choose an application type")
    if not form.scopes:
        raise InvalidClientMetadata("choose at least one scope")
    auth_method, grant_types = registration.APP_TYPES[form.app_type]
    if form.app_type == "machine" and form.redirect_uris:
        raise InvalidRedirectUri("machine-to-machine apps have no redirect URIs: leave the field empty")
    return {
        "client_name": form.name,
        "token_endpoint_auth_method": auth_method,
        "grant_types": list(grant_types),
        "response_types": [] if form.app_type == "machine" else ["code"],
        "redirect_uris": form.redirect_uris,
        "scope": scope_rules.format_scope(form.scopes),
        "post_logout_redirect_uris": form.post_logout_redirect_uris,
    }


def _check_owner(client: ClientRecord | None, user_id: str) -> None:
    if client is None or client.owner_id is None or client.owner_id != user_id:
        raise AppNotFound()


def delete_application(store: DeveloperStore, cache: ClientCache, client: ClientRecord, via: str) -> None:
    """Delete the client: one write, however many grants it has. Every grant, refresh token and code of
    it stops with it (issuance and refresh condition on the client item, introspection reads it:
    oauth/standing.py); the users' consents to it are left behind, unlisted (Connected apps skips
    apps that no longer exist) and unusable (a new client never has the old id)."""
    store.delete_client(client)
    cache.forget(client.client_id)
    audit.emit("client.deleted", client_id=client.client_id, via=via)


class Developer:
    """The operations behind Developer Settings (/developer/apps) and Connected apps (/account/apps)."""

    def __init__(
        self, store: DeveloperStore, clients: ClientCache, settings: Settings, clock: Callable[[], int]
    ) -> None:
        self.max_apps = settings.max_apps_per_user  # MAX_APPS_PER_USER
        self.store = store
        self.clients = clients
        self.rotation_overlap_seconds = settings.secret_rotation_overlap_seconds
        self.clock = clock

    # -- Developer Settings --
    def apps(self, user_id: str) -> list[OwnedApp]:
        return sorted(self.store.list_owned_apps(user_id), key=lambda app: (-app.created_at, app.name))

    def app(self, user_id: str, client_id: str) -> ClientRecord:
        """The user's own application; AppNotFound for an unknown id or someone else's app."""
        if not valid_client_id(client_id):
            raise AppNotFound()
        client = self.store.get_client(client_id)
        _check_owner(client, user_id)
        assert client is not None
        return client

    def _change(self, user_id: str, client_id: str, change: Callable[[ClientRecord], None]) -> ClientRecord:
        """Apply `change` to the user's own app without overwriting a concurrent change, then drop it from the cache."""
        if not valid_client_id(client_id):
            raise AppNotFound()

        def owned_change(client: ClientRecord) -> None:
            _check_owner(client, user_id)
            change(client)

        try:
            client = self.store.update_client(client_id, owned_change)
        except ConditionFailed:
            raise TemporarilyUnavailable("the application changed while saving; try again") from None
        if client is None:
            raise AppNotFound()
        self.clients.forget(client_id)
        return client

    def create(self, user_id: str, form: AppForm) -> registration.RegisteredClient:
        """A new application owned by the user; its secret (confidential apps) is returned once, here."""
        registered = registration.build_client(form_metadata(form), user_id, self.clock())
        try:  # MAX_APPS_PER_USER: the counter's condition, in the creating transaction
            self.store.create_client(registered.client, max_owned=self.max_apps)
        except QuotaReached:
            raise InvalidRequest("you have reached the number of applications one account may register") from None
        audit.emit("client.created", client_id=registered.client.client_id, owner_id=user_id, via="developer")
        return registered

    def update(
        self, user_id: str, client_id: str, name: str, redirect_uris: list[str], scopes: list[str],
        post_logout_redirect_uris: list[str] | None = None,
    ) -> None:
        """Change the name, redirect URIs and allowed scopes (the type, hence the auth method, stays), and
        the post-logout redirect URIs when given."""

        def edit(client: ClientRecord) -> None:
            logout_uris = client.post_logout_redirect_uris if post_logout_redirect_uris is None else \
                post_logout_redirect_uris
            metadata = form_metadata(AppForm(name, client.app_type, redirect_uris, scopes, logout_uris))
            # the form edits neither: an app registered for client_secret_post (CLI) keeps it
            metadata["token_endpoint_auth_method"] = client.auth_method
            metadata["grant_types"] = list(client.grant_types)
            metadata["response_types"] = ["code"] if "authorization_code" in client.grant_types else []
            registration.apply_metadata(client, metadata)

        self._change(user_id, client_id, edit)
        audit.emit("client.updated", client_id=client_id, via="developer")

    def rotate_secret(self, user_id: str, client_id: str) -> tuple[ClientRecord, str]:
        """A new secret, shown once; the old one works for the configured overlap (0: stops at once)."""
        issued: list[str] = []

        def rotate(client: ClientRecord) -> None:
            if not client.confidential:
                raise InvalidClientMetadata("a public client has no secret to rotate")
            issued[:] = [registration.rotate_secret(client, self.clock(), self.rotation_overlap_seconds)]

        client = self._change(user_id, client_id, rotate)
        audit.emit("client.secret_rotated", client_id=client_id, via="developer")
        return client, issued[0]  # the secret of the write that won

    def delete(self, user_id: str, client_id: str) -> None:
        delete_application(self.store, self.clients, self.app(user_id, client_id), via="developer")

    # -- Connected apps --
    def connected_apps(self, user_id: str) -> list[ConnectedApp]:
        """Every application the user has authorised and that still exists, newest first, with the scopes it
        can still use (a scope its owner withdrew since is gone from its tokens, so it is not listed)."""
        connected = []
        for consent in self.store.list_consents(user_id):
            identity = self._app_identity(consent.client_id)
            if identity is None:
                continue
            name, verified, client = identity
            usable = current_scope(" ".join(consent.scopes), client).split()
            connected.append(ConnectedApp(consent.client_id, name, scope_rules.describe(usable),
                                          consent.granted_at, verified))
        return sorted(connected, key=lambda app: (-app.granted_at, app.name))

    def _app_identity(self, client_id: str) -> tuple[str, bool, ClientRecord | None] | None:
        """(name, verified, the client as it is now) of an app that still exists; a metadata-document client
        is listed even when its cached document has lapsed (its grants live on), under the host that
        publishes it and with what it was granted."""
        if is_metadata_url(client_id):
            cached = self.store.get_metadata_client(client_id)
            if cached is None:
                return document_host(client_id), False, None
            return cached.name, cached.verified, cached
        client = self.store.get_client(client_id)
        return (client.name, client.verified, client) if client is not None else None

    def revoke_access(self, user_id: str, client_ref: str) -> None:
        """Withdraw the user's consent: one write ends every grant issued under it, however many there are
        (their refresh tokens and access tokens go inactive, and a code not yet exchanged cannot be)."""
        client_id = client_id_from_ref(client_ref)
        longest = MAX_METADATA_URL if is_metadata_url(client_id) else MAX_CLIENT_ID
        consent = self.store.get_consent(user_id, client_id) if valid_client_id(client_id, longest) else None
        if consent is None:
            raise AppNotFound()
        self.store.delete_consent(user_id, client_id)
        audit.emit("consent.withdrawn", user_id=user_id, client_id=client_id)
