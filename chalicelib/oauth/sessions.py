"""Browser sessions on the authorization server, and the CSRF tokens derived from them.

A session id is a 256-bit random value held only in an HttpOnly cookie; the table stores its
digest. CSRF tokens are derived from the session (or pre-session) id and a purpose, so they need
no storage and cannot be forged without the cookie. A session counts only while its user exists,
is enabled and keeps the generation it had at sign-in: disabling a user, revoking their grants or
resetting their password ends their sessions too (one GetItem of the user per page).
"""

from __future__ import annotations

from typing import Callable, Protocol

from chalicelib.crypto.secrets import derived_token, digest, digests_equal, new_id, new_token
from chalicelib.records import SessionRecord, UserRecord
from chalicelib.settings import Settings


class SessionStore(Protocol):
    def put_session(self, session: SessionRecord) -> None: ...
    def get_session(self, session_digest: str) -> SessionRecord | None: ...
    def delete_session(self, session_digest: str) -> None: ...
    def get_user(self, user_id: str) -> UserRecord | None: ...


MAX_SESSION_ID = 128


class Sessions:
    def __init__(self, store: SessionStore, settings: Settings, clock: Callable[[], int]) -> None:
        self.store = store
        self.lifetime = settings.session_seconds
        self.clock = clock

    def start(self, user_id: str, user_generation: str | None = None) -> tuple[str, SessionRecord]:
        """A new session (always a new id: no fixation from a pre-login id), under the user's generation."""
        session_id = new_token()
        now = self.clock()
        record = SessionRecord(digest(session_id), user_id, now, now + self.lifetime, sid=new_id(),
                               user_generation=user_generation)
        self.store.put_session(record)
        return session_id, record

    def resolve(self, session_id: str | None) -> SessionRecord | None:
        """The live session of a still-enabled user whose grants were not revoked since sign-in; else None."""
        if not session_id or len(session_id) > MAX_SESSION_ID:
            return None
        session = self.store.get_session(digest(session_id))
        if session is None:
            return None
        user = self.store.get_user(session.user_id)
        if user is None or user.disabled or user.generation != session.user_generation:
            return None
        return session

    def end(self, session_id: str | None) -> None:
        if session_id and len(session_id) <= MAX_SESSION_ID:
            self.store.delete_session(digest(session_id))


def csrf_token(secret_id: str, purpose: str) -> str:
    """The CSRF token for a form: bound to the (pre-)session and to what the form does."""
    return derived_token(secret_id, "csrf:" + purpose)


def csrf_valid(secret_id: str | None, purpose: str, presented: str | None) -> bool:
    if not secret_id or not presented or len(presented) > 128:
        return False
    return digests_equal(csrf_token(secret_id, purpose), presented)
