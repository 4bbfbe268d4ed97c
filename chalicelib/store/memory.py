"""An in-memory store with DynamoStore's interface and semantics, for protocol tests and benchmarks.

It keeps DynamoStore's item layout (pk, sk, kind, `data` as JSON, the top-level fields conditions
read), so the same rules hold: a conditional write that loses raises ConditionFailed (AlreadyExists
for a put that must create), every read drops items past their expiry, a transaction checks all its
conditions before it writes anything, and every read returns a copy. One lock makes each operation
atomic, as DynamoDB's conditional writes and transactions are. Not for production: nothing persists.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from typing import Any, Callable, Iterator, Sequence

from chalicelib.clock import now as clock_now
from chalicelib.records import (
    AlreadyExists,
    Authority,
    AuthorizationRequestRecord,
    ClientRecord,
    CodeRecord,
    ConditionFailed,
    ConsentRecord,
    CounterSlot,
    GrantRecord,
    LimitReached,
    OwnedApp,
    QuotaReached,
    RefreshTokenRecord,
    RegistrationTokenRecord,
    ResourceServerRecord,
    SessionRecord,
    SigningKeyRecord,
    Standing,
    UserRecord,
    is_metadata_client_id,
    live,
    new_generation,
)
from chalicelib.store import layout

Key = tuple[str, str]
Item = dict[str, Any]
_CONDITIONED = ("data", "disabled", "generation")  # what a read-change-write conditions on


def _item(kind: str, record: Any) -> Item:
    """Like DynamoStore's item: top-level condition fields (None ones absent), the rest as JSON."""
    data, top = layout.split(record)
    item: Item = {"kind": kind, **{name: value for name, value in top.items() if value is not None}}
    item["data"] = json.loads(json.dumps(data))  # JSONAttribute: what a read gives back
    return item


def _record[R](cls: Callable[..., R], item: Item | None, now: int | None = None) -> R | None:
    if item is None:
        return None
    return layout.rebuild(cls, copy.deepcopy(item.get("data") or {}), item, now)


def _client_record(item: Item | None, now: int | None = None) -> ClientRecord | None:
    return _record(ClientRecord, item, now)


def _unexpired(item: Item | None, now: int) -> bool:
    """DynamoDB's `expires_at > :now` (false when the attribute is absent)."""
    return item is not None and item.get("expires_at") is not None and item["expires_at"] > now


class _Transaction:
    """Conditions first, then writes: all or nothing, like TransactWriteItems."""

    def __init__(self, items: dict[Key, Item], lost: type[ConditionFailed] = ConditionFailed) -> None:
        self.items = items
        self.lost = lost
        self.writes: list[Callable[[], None]] = []

    def check(self, holds: bool) -> None:
        if not holds:
            raise self.lost("ConditionalCheckFailed")

    def put(self, key: Key, item: Item) -> None:
        self.writes.append(lambda: self.items.__setitem__(key, item))

    def delete(self, key: Key) -> None:
        self.writes.append(lambda: self.items.pop(key, None))

    def update(self, key: Key, change: Callable[[Item], None]) -> None:
        def write() -> None:
            item = self.items.setdefault(key, {})
            change(item)

        self.writes.append(write)

    def commit(self) -> None:
        for write in self.writes:
            write()


class MemoryStore:
    """DynamoStore's methods on a dict. Methods take records and return records or None."""

    def __init__(self, clock: Callable[[], int] = clock_now) -> None:
        self.clock = clock
        self._items: dict[Key, Item] = {}
        self._lock = threading.RLock()

    # -- generic helpers --
    def _get(self, pk: str, sk: str) -> Item | None:
        with self._lock:
            item = self._items.get((pk, sk))
            return copy.deepcopy(item) if item is not None else None

    def _put_new(self, key: Key, item: Item) -> None:
        with self._lock:
            if key in self._items:
                raise AlreadyExists("ConditionalCheckFailedException")
            self._items[key] = item

    def _put(self, key: Key, item: Item) -> None:
        with self._lock:
            self._items[key] = item

    def _delete(self, pk: str, sk: str) -> None:
        with self._lock:
            self._items.pop((pk, sk), None)

    def _query(self, pk: str, prefix: str) -> list[tuple[str, Item]]:
        """(sk, item) of one partition in sort-key order, as a Query returns them."""
        with self._lock:
            found = [(sk, copy.deepcopy(item)) for (p, sk), item in self._items.items()
                     if p == pk and sk.startswith(prefix)]
        return sorted(found, key=lambda pair: pair[0].encode())

    @contextlib.contextmanager
    def _transaction(self, lost: type[ConditionFailed] = ConditionFailed) -> Iterator[_Transaction]:
        with self._lock:
            transaction = _Transaction(self._items, lost)
            yield transaction
            transaction.commit()

    # -- clients --
    @staticmethod
    def _owned_app_item(client: ClientRecord) -> tuple[Key, Item]:
        owned = OwnedApp(client.owner_id or "", client.client_id, client.name, client.created_at)
        return (f"user#{client.owner_id}", f"app#{client.client_id}"), _item("app", owned)

    def get_client(self, client_id: str) -> ClientRecord | None:
        """The client; None when absent or expired (an openly registered client left unused)."""
        return _client_record(self._get(f"client#{client_id}", "client"), self.clock())

    def touch_client(self, client_id: str, expires_at: int) -> None:
        """Push an expiring client's expiry forward (never back); a deleted or expired client stays gone."""
        with self._lock:
            item = self._items.get((f"client#{client_id}", "client"))
            if _unexpired(item, self.clock()) and item is not None and item["expires_at"] < expires_at:
                item["expires_at"] = expires_at

    # -- Client ID Metadata Documents: the validated client, cached until its expiry --
    def get_metadata_client(self, client_id: str) -> ClientRecord | None:
        return _client_record(self._get(f"cimd#{client_id}", "cimd"), self.clock())

    def put_metadata_client(self, client: ClientRecord) -> None:
        self._put((f"cimd#{client.client_id}", "cimd"), _item("cimd", client))

    def create_client(self, client: ClientRecord, max_owned: int | None = None) -> None:
        """The client and, for an owned app, the owner's index item and one more on the owner's app
        counter, all or nothing; QuotaReached, nothing written, when the owner already has `max_owned`."""
        key = (f"client#{client.client_id}", "client")
        with self._transaction(AlreadyExists) as transaction:
            transaction.check(key not in self._items)
            if client.owner_id:
                count = self._owned_count(client.owner_id)
                if max_owned is not None and count >= max_owned:
                    raise QuotaReached("the owner has reached the number of applications")
                transaction.put(*self._owned_app_item(client))
                transaction.put((f"user#{client.owner_id}", "apps"), {"kind": "app-count", "count": count + 1})
            transaction.put(key, _item("client", client))

    def _owned_count(self, owner_id: str) -> int:
        """The owner's app counter (made from the index items when missing, as DynamoStore does)."""
        counter = self._items.get((f"user#{owner_id}", "apps"))
        return int(counter["count"]) if counter is not None else len(self.list_owned_apps(owner_id))

    def update_client(
        self, client_id: str, change: Callable[[ClientRecord], None], attempts: int = 3
    ) -> ClientRecord | None:
        """Read, `change` (outside the lock, as another request may write meanwhile), write back only
        if the stored client is still the one `change` saw; re-applied to the fresh item otherwise."""
        client = self._update((f"client#{client_id}", "client"), "client", _client_record, change, attempts)
        if client is not None and client.owner_id:
            self._put(*self._owned_app_item(client))
        return client

    def _update[R](
        self, key: Key, kind: str, load: Callable[[Item | None], R | None], change: Callable[[R], None], attempts: int
    ) -> R | None:
        for _ in range(attempts):
            item = self._get(*key)
            record = load(item)
            if item is None or record is None:
                return None
            change(record)
            with self._lock:
                stored = self._items.get(key)
                if stored is None or any(stored.get(name) != item.get(name) for name in _CONDITIONED):
                    continue
                self._items[key] = _item(kind, record)
            return record
        raise ConditionFailed("the item changed on every attempt")

    def delete_client(self, client: ClientRecord) -> None:
        """The client and, for an owned app, its index item, one less on the owner's app counter."""
        owned = (f"user#{client.owner_id}", f"app#{client.client_id}")
        with self._transaction() as transaction:
            transaction.delete((f"client#{client.client_id}", "client"))
            if client.owner_id and owned in self._items:  # counted down once only
                count = self._owned_count(client.owner_id)
                transaction.delete(owned)
                transaction.put((f"user#{client.owner_id}", "apps"), {"kind": "app-count", "count": count - 1})

    def list_owned_apps(self, owner_id: str) -> list[OwnedApp]:
        return [r for r in (_record(OwnedApp, i) for _, i in self._query(f"user#{owner_id}", "app#")) if r]

    # -- users --
    def create_user(self, user: UserRecord) -> None:
        """The user item and its email item together, so login reads by key."""
        user_key, email_key = (f"user#{user.user_id}", "user"), (f"email#{user.email}", "email")
        with self._transaction(AlreadyExists) as transaction:
            transaction.check(user_key not in self._items and email_key not in self._items)
            transaction.put(user_key, _item("user", user))
            transaction.put(email_key, {"kind": "email", "data": {"user_id": user.user_id}})

    def get_user(self, user_id: str) -> UserRecord | None:
        return _record(UserRecord, self._get(f"user#{user_id}", "user"))

    def find_user_id(self, email: str) -> str | None:
        item = self._get(f"email#{email}", "email")
        return item["data"]["user_id"] if item is not None else None

    def update_user(self, user_id: str, change: Callable[[UserRecord], None]) -> UserRecord | None:
        return self._update((f"user#{user_id}", "user"), "user", lambda item: _record(UserRecord, item), change, 3)

    def delete_user(self, user: UserRecord) -> None:
        with self._transaction() as transaction:
            transaction.delete((f"user#{user.user_id}", "user"))
            transaction.delete((f"email#{user.email}", "email"))

    # -- sessions --
    def put_session(self, session: SessionRecord) -> None:
        self._put_new((f"session#{session.session_digest}", "session"), _item("session", session))

    def get_session(self, session_digest: str) -> SessionRecord | None:
        return _record(SessionRecord, self._get(f"session#{session_digest}", "session"), self.clock())

    def delete_session(self, session_digest: str) -> None:
        self._delete(f"session#{session_digest}", "session")

    # -- parked authorization requests --
    def put_authorization_request(self, request: AuthorizationRequestRecord) -> None:
        self._put_new((f"authreq#{request.request_digest}", "authreq"), _item("authreq", request))

    def get_authorization_request(self, request_digest: str) -> AuthorizationRequestRecord | None:
        """The parked request; None when absent, expired or already consumed."""
        item = self._get(f"authreq#{request_digest}", "authreq")
        if item is not None and "used_at" in item:
            return None
        return _record(AuthorizationRequestRecord, item, self.clock())

    def consume_authorization_request(self, request_digest: str) -> None:
        """Single use: marks the request used for exactly one caller, and only while unexpired (DynamoStore
        marks rather than deletes, so that the retry of a write whose answer was lost is recognised)."""
        key = (f"authreq#{request_digest}", "authreq")
        with self._lock:
            item = self._items.get(key)
            if not _unexpired(item, self.clock()) or item is None or "used_at" in item:
                raise ConditionFailed("ConditionalCheckFailedException")
            item["used_at"] = self.clock()

    # -- authorization codes --
    def put_code(self, code: CodeRecord) -> None:
        self._put_new((f"code#{code.code_digest}", "code"), _item("code", code))

    def get_code(
        self, code_digest: str, include_used: bool = True, limits: Sequence[CounterSlot] = ()
    ) -> CodeRecord | None:
        """The code even when already used (reuse detection needs it); None when absent or expired.
        With `limits`: read together with those throttle counters, LimitReached when one is full."""
        with self._lock:
            self.check_limits(limits)
            record = _record(CodeRecord, self._get(f"code#{code_digest}", "code"), self.clock())
        if record is not None and record.used_at is not None and not include_used:
            return None
        return record

    def redeem_code(self, code: CodeRecord, grant: GrantRecord, refresh_token: RefreshTokenRecord | None) -> None:
        """Mark the code used, write the grant and the refresh token: all or nothing, while the client,
        the user and the consent stand with the code's generations. ConditionFailed when the code was
        used or expired meanwhile, or that authority was withdrawn."""
        now = self.clock()
        code_key = (f"code#{code.code_digest}", "code")
        with self._transaction() as transaction:
            code_item = self._items.get(code_key)
            transaction.check(_unexpired(code_item, now) and "used_at" not in (code_item or {}))
            transaction.check(self._grant_key(grant) not in self._items)
            self._check_authority(transaction, grant.client_id, grant.user_id, code)
            transaction.update(code_key, lambda item: item.__setitem__("used_at", now))
            transaction.put(self._grant_key(grant), _item("grant", grant))
            if refresh_token is not None:
                transaction.check(self._refresh_key(refresh_token) not in self._items)
                transaction.put(self._refresh_key(refresh_token), _item("refresh", refresh_token))

    def _check_authority(self, transaction: _Transaction, client_id: str, user_id: str, authority: Authority) -> None:
        """Client and user exist, enabled, same generations; the consent stands with its generation.
        A metadata-document client has no client item; an unused open client expires."""
        checks = [((f"user#{user_id}", "user"), authority.user_generation)]
        if not is_metadata_client_id(client_id):
            checks.append(((f"client#{client_id}", "client"), authority.client_generation))
            client = self._items.get((f"client#{client_id}", "client")) or {}
            transaction.check(client.get("expires_at") is None or client["expires_at"] > self.clock())
        for key, generation in checks:
            item = self._items.get(key)
            transaction.check(item is not None and not item.get("disabled") and item.get("generation") == generation)
        consent = self._items.get((f"user#{user_id}", f"consent#{client_id}")) or {}
        transaction.check(consent.get("data") is not None and consent.get("generation") == authority.consent_generation)

    def get_standing(self, client_id: str, user_id: str, grant_id: str) -> Standing:
        """The grant and what it stands on (client, user, consent), read together."""
        with self._lock:
            return Standing(
                grant=self.get_grant(client_id, grant_id),
                client=self.get_client(client_id),
                user=self.get_user(user_id),
                consent=self.get_consent(user_id, client_id),
            )

    # -- grants --
    @staticmethod
    def _grant_key(grant: GrantRecord) -> Key:
        return f"client#{grant.client_id}", f"grant#{grant.grant_id}"

    def get_grant(self, client_id: str, grant_id: str) -> GrantRecord | None:
        """The grant even when revoked (callers check `active`); None when absent or expired."""
        return _record(GrantRecord, self._get(f"client#{client_id}", f"grant#{grant_id}"), self.clock())

    def revoke_grant(self, client_id: str, grant_id: str) -> None:
        """Set the family's revoked flag (idempotent: the first revocation time is kept)."""
        with self._lock:
            item = self._items.get((f"client#{client_id}", f"grant#{grant_id}"))
            if item is not None:
                item.setdefault("revoked_at", self.clock())

    # -- refresh tokens --
    @staticmethod
    def _refresh_key(token: RefreshTokenRecord) -> Key:
        return f"rt#{token.token_digest}", "rt"

    def get_refresh_token(
        self, token_digest: str, limits: Sequence[CounterSlot] = ()
    ) -> RefreshTokenRecord | None:
        """The token even when already rotated (reuse detection); None when absent or expired.
        With `limits`: read together with those throttle counters, LimitReached when one is full."""
        with self._lock:
            self.check_limits(limits)
            return _record(RefreshTokenRecord, self._get(f"rt#{token_digest}", "rt"), self.clock())

    def rotate_refresh_token(self, old: RefreshTokenRecord, new: RefreshTokenRecord, grace_response: str) -> None:
        """Spend the old token and store its successor together, while the grant is active and the
        authority it was issued under stands; ConditionFailed otherwise (spent meanwhile, grant revoked,
        client, user or consent gone, disabled or bulk-revoked)."""
        now = self.clock()
        old_key = self._refresh_key(old)
        with self._transaction() as transaction:
            old_item = self._items.get(old_key)
            transaction.check(_unexpired(old_item, now) and "used_at" not in (old_item or {}))
            transaction.check(self._refresh_key(new) not in self._items)
            grant = self._items.get((f"client#{old.client_id}", f"grant#{old.grant_id}"))
            transaction.check(_unexpired(grant, now) and "revoked_at" not in (grant or {}))
            self._check_authority(transaction, old.client_id, old.user_id, old)
            spent = {"used_at": now, "successor_digest": new.token_digest, "grace_response": grace_response}
            transaction.update(old_key, lambda item: item.update(spent))
            transaction.put(self._refresh_key(new), _item("refresh", new))

    # -- consents --
    def get_consent(self, user_id: str, client_id: str) -> ConsentRecord | None:
        return self._consent(self._get(f"user#{user_id}", f"consent#{client_id}"))

    @staticmethod
    def _consent(item: Item | None) -> ConsentRecord | None:
        if item is None or not item.get("data"):
            return None
        return _record(ConsentRecord, item)

    def save_consent_scopes(
        self, user_id: str, client_id: str, scopes: list[str], granted_at: int, resources: list[str] | None = None
    ) -> str:
        """Remember what the user granted; returns the consent's generation (new when the consent is)."""
        data = {"user_id": user_id, "client_id": client_id, "scopes": list(scopes), "granted_at": granted_at,
                "resources": list(resources or [])}
        with self._lock:
            item = self._items.setdefault((f"user#{user_id}", f"consent#{client_id}"), {})
            item.update(kind="consent", data=data)
            return str(item.setdefault("generation", new_generation()))

    def list_consents(self, user_id: str) -> list[ConsentRecord]:
        records = (self._consent(item) for _, item in self._query(f"user#{user_id}", "consent#"))
        return [r for r in records if r is not None]

    def delete_consent(self, user_id: str, client_id: str) -> None:
        self._delete(f"user#{user_id}", f"consent#{client_id}")

    # -- signing keys --
    def list_signing_keys(self) -> list[SigningKeyRecord]:
        return [r for r in (_record(SigningKeyRecord, i) for _, i in self._query("keyring", "key#")) if r]

    def put_signing_key(self, key: SigningKeyRecord) -> None:
        self._put(("keyring", f"key#{key.kid}"), _item("signing-key", key))

    def delete_signing_key(self, kid: str) -> None:
        self._delete("keyring", f"key#{kid}")

    # -- resource servers (RFC 8707) --
    def create_resource_server(self, server: ResourceServerRecord) -> None:
        self._put_new(("resource-servers", f"rs#{server.identifier}"), _item("resource-server", server))

    def get_resource_server(self, identifier: str) -> ResourceServerRecord | None:
        return _record(ResourceServerRecord, self._get("resource-servers", f"rs#{identifier}"))

    def list_resource_servers(self) -> list[ResourceServerRecord]:
        items = self._query("resource-servers", "rs#")
        return [r for r in (_record(ResourceServerRecord, i) for _, i in items) if r]

    def delete_resource_server(self, identifier: str) -> bool:
        """False when there was no such resource server."""
        with self._lock:
            return self._items.pop(("resource-servers", f"rs#{identifier}"), None) is not None

    # -- initial access tokens for dynamic registration --
    def put_registration_token(self, token: RegistrationTokenRecord) -> None:
        self._put((f"regtoken#{token.token_digest}", "regtoken"), _item("registration-token", token))

    def get_registration_token(self, token_digest: str) -> RegistrationTokenRecord | None:
        item = self._get(f"regtoken#{token_digest}", "regtoken")
        return _record(RegistrationTokenRecord, item, self.clock())

    def delete_registration_token(self, token_digest: str) -> None:
        self._delete(f"regtoken#{token_digest}", "regtoken")

    # -- rate limiting --
    def count_attempt(self, key: str, window_seconds: int) -> int:
        """Add one to this window's counter and return it."""
        window = self.clock() // window_seconds
        with self._lock:
            item = self._items.setdefault((f"rate#{key}", f"window#{window}"), {})
            item.update(kind="rate", count=item.get("count", 0) + 1, expires_at=(window + 1) * window_seconds)
            return item["count"]

    def attempts(self, key: str, window_seconds: int) -> int:
        return self.counter(CounterSlot(key, window_seconds, 0))

    # -- throttles (oauth/throttle.py) --
    def take_slot(self, slot: CounterSlot) -> bool:
        """One unit of this window's counter if below its limit; False, nothing counted, when full."""
        window = self.clock() // slot.window_seconds
        with self._lock:
            item = self._items.setdefault((f"rate#{slot.key}", f"window#{window}"), {})
            if item.get("count", 0) >= slot.limit:
                return False
            item.update(kind="rate", count=item.get("count", 0) + 1,
                        expires_at=(window + 1) * slot.window_seconds)
            return True

    def give_back_slot(self, slot: CounterSlot) -> None:
        window = self.clock() // slot.window_seconds
        with self._lock:
            item = self._items.get((f"rate#{slot.key}", f"window#{window}"))
            if item is not None and item.get("count", 0) > 0:
                item["count"] -= 1

    def check_limits(self, limits: Sequence[CounterSlot]) -> None:
        """LimitReached when one of these throttle counters is full (read together)."""
        with self._lock:
            for slot in limits:
                if self.counter(slot) >= slot.limit:
                    raise LimitReached(slot)

    def counter(self, slot: CounterSlot) -> int:
        now = self.clock()
        item = self._get(f"rate#{slot.key}", f"window#{now // slot.window_seconds}")
        if item is None or not live(item.get("expires_at"), now):
            return 0
        return int(item.get("count") or 0)

    def add_strike(self, key: str, backoff: Callable[[int], int], memory_seconds: int) -> int:
        now = self.clock()
        with self._lock:
            item = self._items.setdefault((f"rate#{key}", "block"), {})
            item.update(kind="rate-block", count=item.get("count", 0) + 1, expires_at=now + memory_seconds)
            until = now + backoff(item["count"])
            item["blocked_until"] = max(until, item.get("blocked_until", 0))
            return until

    def blocked_until(self, key: str) -> int | None:
        item = self._get(f"rate#{key}", "block")
        until = (item or {}).get("blocked_until")
        return until if until is not None and until > self.clock() else None

    def clear_throttle(self, key: str) -> int:
        with self._lock:
            keys = [k for k in self._items if k[0] == f"rate#{key}"]
            for k in keys:
                del self._items[k]
            return len(keys)

    # -- known devices --
    def remember_device(self, device_digest: str, user_id: str, expires_at: int) -> None:
        self._put((f"device#{device_digest}", "device"),
                  {"kind": "device", "data": {"user_id": user_id}, "expires_at": expires_at})

    def device_user_id(self, device_digest: str) -> str | None:
        item = self._get(f"device#{device_digest}", "device")
        if item is None or not live(item.get("expires_at"), self.clock()):
            return None
        return item["data"]["user_id"]

    # -- what operator commands and tests count --
    def scan_records[R](self, kind: str, load: Callable[[Item], R | None]) -> list[R]:
        with self._lock:
            items = [copy.deepcopy(item) for item in self._items.values() if item.get("kind") == kind]
        return [r for r in (load(item) for item in items) if r is not None]

    def scan_users(self) -> list[UserRecord]:
        return self.scan_records("user", lambda item: _record(UserRecord, item))

    def scan_clients(self) -> list[ClientRecord]:
        return self.scan_records("client", _client_record)

    def scan_registration_tokens(self) -> list[RegistrationTokenRecord]:
        now = self.clock()
        return self.scan_records("registration-token", lambda item: _record(RegistrationTokenRecord, item, now))
