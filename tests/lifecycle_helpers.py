"""Helpers for the token-lifecycle tests: clients, grants and tokens minted through the store,
without the /token endpoint, and form requests to /revoke and /introspect."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from chalicelib import clock
from chalicelib.crypto.secrets import digest, new_id, new_token
from chalicelib.records import (
    AlreadyExists,
    ClientRecord,
    ClientSecret,
    CodeRecord,
    GrantRecord,
    RefreshTokenRecord,
    UserRecord,
)
from tests.store_support import put_grant, put_refresh_token

SECRET = "client-secret-for-tests"
USER_SCOPE = "read:analysis write:project"
FORM = "application/x-www-form-urlencoded"


def make_client(services: Any, client_id: str, *, public: bool = False, resource_server: bool = False,
                scopes: list[str] | None = None) -> ClientRecord:
    client = ClientRecord(
        client_id=client_id,
        name=client_id,
        redirect_uris=[f"https://{client_id}.example/cb"],
        scopes=scopes or ["read:analysis", "write:analysis", "read:project", "write:project"],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        auth_method="none" if public else "client_secret_basic",
        app_type="native" if public else "web",
        secrets=[] if public else [ClientSecret(digest(SECRET))],
        created_at=clock.now(),
        resource_server=resource_server,
    )
    services.store.create_client(client)
    return client


@dataclass
class Minted:
    grant_id: str
    client_id: str
    user_id: str
    refresh_token: str
    access_token: str


def mint(services: Any, client_id: str, user_id: str = "user-1", scope: str = USER_SCOPE,
         refresh_seconds: int = 3600) -> Minted:
    """A grant with one refresh token and one access token, as a code exchange would leave them."""
    now = clock.now()
    try:  # the user must exist for a refresh to rotate; no password needed here (no argon2 work)
        services.store.create_user(UserRecord(user_id, f"{user_id}@example.com", "unused", now))
    except AlreadyExists:
        pass
    # the consent the grant was issued under (a refresh and introspection check that it stands)
    authority = {"consent_generation": services.store.save_consent_scopes(user_id, client_id, scope.split(), now)}
    grant = GrantRecord(new_id("g_"), client_id, user_id, scope, now, now + 90 * 86400, **authority)
    put_grant(services.store, grant)
    refresh = new_token()
    put_refresh_token(services.store, RefreshTokenRecord(digest(refresh), grant.grant_id, client_id, user_id, scope,
                                                         now, now + refresh_seconds, **authority))
    access = services.access_tokens.issue(
        sub=user_id, client_id=client_id, scope=scope, audience=services.settings.api_audience,
        grant_id=grant.grant_id,
    ).token
    return Minted(grant.grant_id, client_id, user_id, refresh, access)


def put_code(services: Any, minted: Minted) -> str:
    """A live, unused authorization code of `minted`'s grant, written straight to the store."""
    code, now = new_token(), clock.now()
    services.store.put_code(CodeRecord(digest(code), minted.client_id, f"https://{minted.client_id}.example/cb", True,
                                       minted.user_id, "read:analysis", None, minted.grant_id, now, now + 60))
    return code


def client_token(services: Any, client_id: str, scope: str = "read:analysis") -> str:
    """A client_credentials access token: sub "client:<id>", no grant."""
    return services.access_tokens.issue(
        sub=f"client:{client_id}", client_id=client_id, scope=scope,
        audience=services.settings.api_audience, grant_id=None,
    ).token


def basic(client_id: str, secret: str = SECRET) -> dict[str, str]:
    value = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


def post_form(http: Any, path: str, params: list[tuple[str, str]] | dict[str, str],
              headers: dict[str, str] | None = None) -> Any:
    return http.post(path, body=urlencode(params).encode(), headers={"Content-Type": FORM, **(headers or {})})


def revoke(http: Any, token: str, client_id: str = "c1", **extra: str) -> Any:
    return post_form(http, "/revoke", {"token": token, **extra}, basic(client_id))


def introspect(http: Any, token: str, client_id: str = "rs1", **extra: str) -> Any:
    return post_form(http, "/introspect", {"token": token, **extra}, basic(client_id))


def grant_revoked(services: Any, minted: Minted) -> bool:
    grant = services.store.get_grant(minted.client_id, minted.grant_id)
    assert grant is not None
    return grant.revoked_at is not None
