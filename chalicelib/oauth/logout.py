"""OpenID Connect RP-Initiated Logout 1.0: validate a logout request and decide whether to ask the user.

A post_logout_redirect_uri is followed only when it exactly matches one the client registered, and the
client is known (client_id or the audience of id_token_hint). Without a valid id_token_hint naming the
signed-in user the user confirms first (§2: the OP SHOULD ask), so a cross-site link cannot sign anyone
out silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from chalicelib.oauth.clients import ClientDirectory
from chalicelib.oauth.errors import InvalidRequest
from chalicelib.oauth.id_tokens import HintedUser, IdTokens
from chalicelib.records import SessionRecord

PARAMETERS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "logout_hint", "ui_locales")
MAX_STATE = 2048
MAX_URI = 2000


class LogoutRefused(Exception):
    """The request cannot be honoured as sent: the user sees this message, the client gets no redirect."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class LogoutRequest:
    hinted: HintedUser | None
    client_id: str | None
    client_name: str | None
    post_logout_redirect_uri: str | None  # validated: registered for client_id
    state: str | None

    def needs_confirmation(self, session: SessionRecord | None) -> bool:
        """Ask the user unless there is nothing to end or the client proved who is signed in (§2, §6)."""
        if session is None:
            return False
        return self.hinted is None or self.hinted.sub != session.user_id

    def location(self) -> str | None:
        """Where to send the browser after signing out: the registered URI with `state` (§3)."""
        uri = self.post_logout_redirect_uri
        if uri is None or self.state is None:
            return uri
        extra = urlencode([("state", self.state)], quote_via=quote, safe="")
        if "?" not in uri:
            return f"{uri}?{extra}"
        return uri + ("" if uri.endswith(("?", "&")) else "&") + extra


class Logout:
    def __init__(self, clients: ClientDirectory, id_tokens: IdTokens) -> None:
        self.clients = clients
        self.id_tokens = id_tokens

    def validate(self, values: dict[str, str]) -> LogoutRequest:
        """The request's parameters checked (§2); LogoutRefused with a fixed message otherwise."""
        hint = values.get("id_token_hint") or None
        client_id = values.get("client_id") or None
        uri = values.get("post_logout_redirect_uri") or None
        state = values.get("state") or None
        hinted = None
        if hint is not None:
            try:
                hinted = self.id_tokens.verify_hint(hint)
            except InvalidRequest:
                raise LogoutRefused("This sign-out request carries an ID token that Clipron did not issue.") from None
            if client_id is not None and client_id != hinted.client_id:
                raise LogoutRefused("This sign-out request names two different applications.")
            client_id = hinted.client_id
        if state is not None and len(state) > MAX_STATE:
            raise LogoutRefused("This sign-out request is malformed.")
        client = self.clients.get(client_id) if client_id is not None and len(client_id) <= 128 else None
        if uri is not None:
            if client is None:
                raise LogoutRefused("This sign-out request must name a registered application.")
            if len(uri) > MAX_URI or uri not in client.post_logout_redirect_uris:
                raise LogoutRefused("The address to return to after signing out is not registered for this app.")
        return LogoutRequest(hinted, client.client_id if client else None, client.name if client else None, uri, state)
