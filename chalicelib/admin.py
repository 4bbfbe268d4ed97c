"""The operator's tools behind the CLI: users, clients, registration tokens (run with operator credentials).

Listing Scans the table (never on a request path). Every withdrawal is one write (oauth/standing.py):
disabling sets a flag, revoking a user's or client's grants replaces its generation, deleting removes
the item, and every grant, refresh token and code issued under it stops at once. Other Lambda
instances keep a client in their cache for up to CLIENT_CACHE_SECONDS, but token issuance, refresh
and introspection check the stored item, so a disabled or bulk-revoked client mints nothing meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from chalicelib.crypto.passwords import hash_password
from chalicelib.oauth import accounts
from chalicelib.oauth.developer import ClientCache, delete_application
from chalicelib.oauth.throttle import source_of, subject_of, throttle_key
from chalicelib.records import ClientRecord, RegistrationTokenRecord, UserRecord, new_generation
from chalicelib.store.dynamo import DynamoStore


class AdminError(Exception):
    """An operator command that cannot be done as asked (one clear line)."""


class NotFound(AdminError):
    """No such user, client or registration token."""


@dataclass
class Admin:
    store: DynamoStore
    cache: ClientCache  # this process's client cache

    # -- users --
    def users(self) -> list[UserRecord]:
        return sorted(self.store.scan_users(), key=lambda user: user.email)

    def user(self, id_or_email: str) -> UserRecord:
        """A user by id, or by email (normalised as at sign-in)."""
        user_id = self.store.find_user_id(accounts.normalise_email(id_or_email)) if "@" in id_or_email else id_or_email
        user = self.store.get_user(user_id) if user_id else None
        if user is None:
            raise NotFound("no such user")
        return user

    def _change_user(self, id_or_email: str, change: Callable[[UserRecord], None]) -> UserRecord:
        updated = self.store.update_user(self.user(id_or_email).user_id, change)
        if updated is None:
            raise NotFound("no such user")
        return updated

    def set_user_disabled(self, id_or_email: str, disabled: bool) -> UserRecord:
        """Disabled: refused at sign-in, signed out of every page, no refresh or active token; enabling
        brings the grants back (nothing was revoked)."""
        return self._change_user(id_or_email, lambda user: setattr(user, "disabled", disabled))

    def revoke_user_grants(self, id_or_email: str) -> UserRecord:
        """End every grant, refresh token, unexchanged code and session of the user: one write."""
        return self._change_user(id_or_email, lambda user: setattr(user, "generation", new_generation()))

    def reset_password(self, id_or_email: str, password: str) -> UserRecord:
        """A new password; the user's grants and sessions end too (a reset usually means a compromise)."""
        if not accounts.MIN_PASSWORD <= len(password) <= accounts.MAX_PASSWORD:
            raise AdminError(f"the password must have {accounts.MIN_PASSWORD} to {accounts.MAX_PASSWORD} characters")
        password_hash = hash_password(password)

        def reset(user: UserRecord) -> None:
            user.password_hash = password_hash
            user.generation = new_generation()

        return self._change_user(id_or_email, reset)

    def delete_user(self, id_or_email: str) -> tuple[UserRecord, list[str]]:
        """Delete the account (its grants and sessions stop with it); returns the ids of apps it still owns."""
        user = self.user(id_or_email)
        self.store.delete_user(user)
        return user, [app.client_id for app in self.store.list_owned_apps(user.user_id)]

    # -- clients --
    def clients(self) -> list[ClientRecord]:
        return sorted(self.store.scan_clients(), key=lambda client: (client.name, client.client_id))

    def client(self, client_id: str) -> ClientRecord:
        client = self.store.get_client(client_id)
        if client is None:
            raise NotFound("no such client")
        return client

    def _change_client(self, client_id: str, change: Callable[[ClientRecord], None]) -> ClientRecord:
        updated = self.store.update_client(client_id, change)
        if updated is None:
            raise NotFound("no such client")
        self.cache.forget(client_id)
        return updated

    def set_client_disabled(self, client_id: str, disabled: bool) -> ClientRecord:
        """Disabled: refused everywhere (authorize, token, revoke, introspect, registration management)
        and its tokens inactive; enabling brings its grants back (nothing was revoked)."""
        return self._change_client(client_id, lambda client: setattr(client, "disabled", disabled))

    def revoke_client_grants(self, client_id: str) -> ClientRecord:
        """End every grant, refresh token and unexchanged code of the client, for every user: one write."""
        return self._change_client(client_id, lambda client: setattr(client, "generation", new_generation()))

    def delete_client(self, client_id: str) -> ClientRecord:
        client = self.client(client_id)
        delete_application(self.store, self.cache, client, via="operator")
        return client

    # -- throttles (the key scheme: oauth/throttle.py) --
    def clear_throttles(self, email: str | None, source: str | None, client_id: str | None,
                        everyone: bool) -> dict[str, int]:
        """Forget the counters and backoff blocks naming these subjects: an account (and, with a source,
        that account from that source), a source address, a client id from a source, the global ceiling.
        Returns the number of items deleted per throttle key."""
        email = accounts.normalise_email(email) if email else None
        source = source_of(source) if source else None
        wanted: list[tuple[str, str]] = []
        if email:
            wanted.append(("login-account", subject_of(email)))
        if email and source:
            wanted.append(("login-account-source", subject_of(email, source)))
        if source and not email and not client_id:
            wanted += [("login-source", subject_of(source)), ("client-auth-source", subject_of(source))]
        if client_id and source:
            wanted.append(("client-auth", subject_of(client_id, source)))
        if everyone:
            wanted.append(("login-global", "all"))
        if not wanted:
            raise AdminError("name --email, --source, --client-id with --source, or --global")
        keys = [throttle_key(scope, subject) for scope, subject in wanted]
        return {key: self.store.clear_throttle(key) for key in keys}

    # -- initial access tokens for POST /register --
    def registration_tokens(self) -> list[RegistrationTokenRecord]:
        return sorted(self.store.scan_registration_tokens(), key=lambda token: token.created_at)

    def revoke_registration_token(self, digest_prefix: str) -> RegistrationTokenRecord:
        """By the start of its digest (as listed; at least 8 characters, and it must name one token)."""
        matches = [t for t in self.store.scan_registration_tokens() if t.token_digest.startswith(digest_prefix)]
        if len(digest_prefix) < 8 or len(matches) != 1:
            raise NotFound("name exactly one registration token by at least 8 characters of its digest")
        self.store.delete_registration_token(matches[0].token_digest)
        return matches[0]
