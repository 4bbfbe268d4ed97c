"""Whether a grant is still in force: the one rule refresh, introspection and token exchange share.

A grant is in force while it is neither revoked nor expired and the authority it was issued under
still stands: its client exists, is enabled and keeps the generation recorded on the grant; so does
its user; and the user's consent to the client exists with the recorded generation (records.Authority).
Every withdrawal writes exactly one of those items (revoke access deletes the consent, deleting an
app deletes the client, disabling flags one, an operator's bulk revocation replaces a generation),
so it ends all the grants it covers with one write; and issuance conditions on the same three items
in its transaction (store.redeem_code, store.rotate_refresh_token), so whichever runs second sees
the other.

Token exchange (and anything else that mints from an existing grant) must call `grant_in_force`
before it issues, and condition its own write the same way if it stores anything.
"""

from __future__ import annotations

from typing import Protocol

from chalicelib.oauth.scopes import format_scope
from chalicelib.records import Authority, ClientRecord, Standing, is_metadata_client_id


class StandingStore(Protocol):
    def get_standing(self, client_id: str, user_id: str, grant_id: str) -> Standing: ...


def client_in_force(client: ClientRecord | None) -> bool:
    """A client that exists and is not disabled (client_credentials tokens have nothing else to check)."""
    return client is not None and not client.disabled


def authority_stands(standing: Standing, client_id: str, authority: Authority) -> bool:
    """Client, user and consent still exist, enabled, with the generations `authority` was issued under.

    A metadata-document client has no client item (its cached document may lapse while its grants
    live on): its grants stand on the user and the consent alone.
    """
    client, user, consent = standing.client, standing.user, standing.consent
    client_stands = is_metadata_client_id(client_id) or (
        client_in_force(client) and client is not None and client.generation == authority.client_generation
    )
    return (
        client_stands
        and user is not None
        and not user.disabled
        and user.generation == authority.user_generation
        and consent is not None
        and consent.generation == authority.consent_generation
    )


def grant_in_force(store: StandingStore, client_id: str, user_id: str, grant_id: str, now: int) -> Standing | None:
    """The grant with what it stands on when it is in force; None otherwise. One DynamoDB call."""
    standing = store.get_standing(client_id, user_id, grant_id)
    grant = standing.grant
    if grant is None or not grant.active(now) or grant.user_id != user_id or grant.client_id != client_id:
        return None
    return standing if authority_stands(standing, client_id, grant) else None


def current_scope(scope: str, client: ClientRecord | None) -> str:
    """The part of a granted scope the client may still ask for: a scope its owner withdrew is gone
    (None: a metadata-document client whose cached document lapsed keeps what it was granted)."""
    return format_scope([s for s in scope.split() if client is None or s in client.scopes])
