"""The DynamoDB store: one PynamoDB model over the single OAuth table, one shared connection.

Every request path reads by key (GetItem with consistent reads, Query on one partition) and
writes with conditions or TransactWriteItems; the only Scan lives in operator commands. Every
read drops items past their expiry, since TTL deletion lags by up to days (and never happens
in moto).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any, Callable, Iterator, Sequence

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.connection import Connection, TableConnection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

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
    StoreUnavailable,
    UserRecord,
    is_metadata_client_id,
    live,
    new_generation,
)
from chalicelib.settings import Settings
from chalicelib.store import layout

_CONDITION_CODES = {"ConditionalCheckFailedException", "TransactionCanceledException"}
_COUNTER_ATTEMPTS = 5  # a transaction on a counter lost to a concurrent one is tried again


class _SharedConnectionModel(Model):
    """Every model built on this shares one botocore session and client (cold start: one, not N)."""

    _shared_connection: Connection | None = None
    _shared_lock = threading.Lock()

    @classmethod
    def _get_connection(cls) -> TableConnection:
        table_connection = super()._get_connection()
        with _SharedConnectionModel._shared_lock:
            shared = _SharedConnectionModel._shared_connection
            if shared is None:
                shared = _SharedConnectionModel._shared_connection = table_connection.connection
            own = table_connection.connection
            if own is not shared:
                # the shared connection must also know this model's table schema (PynamoDB keeps it
                # per connection); without it, the second table's calls fail with TableError
                if cls.Meta.table_name not in shared._tables:
                    shared.add_meta_table(own.get_meta_table(cls.Meta.table_name))
                table_connection.connection = shared
        return table_connection


class Item(_SharedConnectionModel):
    """One OAuth item. `kind` says which record `data` holds; conditions use the top-level fields."""

    class Meta:
        table_name = "clipron-oauth-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    data = JSONAttribute(null=True)
    expires_at = NumberAttribute(null=True, attr_name="ttl")
    used_at = NumberAttribute(null=True)
    revoked_at = NumberAttribute(null=True)
    count = NumberAttribute(null=True)
    generation = UnicodeAttribute(null=True)  # client, user, consent: what issuance conditions on (Authority)
    successor_digest = UnicodeAttribute(null=True)
    grace_response = UnicodeAttribute(null=True)
    disabled = BooleanAttribute(null=True)  # top level so a transaction can condition on a live, enabled user
    blocked_until = NumberAttribute(null=True)  # a throttle's backoff: refused until then


class ApiItem(_SharedConnectionModel):
    """One item of the Clipron resource API's own table."""

    class Meta:
        table_name = "clipron-api-unbound"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    data = JSONAttribute()
    created_at = NumberAttribute()


def bind_models(settings: Settings) -> None:
    """Point the models at this stage's tables, with timeouts well under API Gateway's 29 s.

    Binding again to the same tables and limits keeps the connection and its botocore session
    (wiring.reset() in the local run and the tests: loading botocore's models is the slow part).
    """
    changed = False
    for model, table in ((Item, settings.table_name), (ApiItem, settings.api_table_name)):
        meta = model.Meta
        wanted = {
            "table_name": table,
            "region": settings.aws_region,
            "connect_timeout_seconds": settings.ddb_connect_timeout_seconds,
            "read_timeout_seconds": settings.ddb_read_timeout_seconds,
            "max_retry_attempts": settings.ddb_max_retries,
        }
        if any(getattr(meta, name, None) != value for name, value in wanted.items()):
            changed = True
            for name, value in wanted.items():
                setattr(meta, name, value)
            model._connection = None
    if changed:
        _SharedConnectionModel._shared_connection = None


def drop_connections() -> None:
    """Forget the models' connections, the shared botocore session, client and pool (SnapStart restore)."""
    with _SharedConnectionModel._shared_lock:
        for model in (Item, ApiItem):
            model._connection = None
        _SharedConnectionModel._shared_connection = None


def shared_connection() -> Connection:
    """The one low-level connection (for transactions and for building other clients from its session)."""
    Item._get_connection()
    assert _SharedConnectionModel._shared_connection is not None
    return _SharedConnectionModel._shared_connection


@contextlib.contextmanager
def _translated(lost: type[ConditionFailed] = ConditionFailed) -> Iterator[None]:
    """Map PynamoDB/botocore failures onto the store's outcomes: a lost condition, or unavailable."""
    try:
        yield
    except PynamoDBException as error:
        code = error_code(error)
        if code in _CONDITION_CODES and _only_conditions_failed(error):
            raise lost(code) from None
        raise StoreUnavailable(code or type(error.cause or error).__name__) from None
    except (BotoCoreError, ClientError) as error:
        raise StoreUnavailable(type(error).__name__) from None


def _transaction() -> TransactWrite:
    """A TransactWriteItems carrying a ClientRequestToken. botocore resends the same request (and token)
    when an answer is lost, and DynamoDB applies a token at most once in 10 minutes, so the retry of a
    committed transaction succeeds instead of failing its own conditions. Where a retry can still
    come back as a failed condition (after those 10 minutes, or a store without the feature), the
    callers read back what they wrote."""
    return TransactWrite(connection=shared_connection(), client_request_token=uuid.uuid4().hex)


def error_code(error: PynamoDBException) -> str | None:
    """The DynamoDB error code behind a PynamoDB error; None for a timeout or a lost connection.

    PynamoDB's own `cause_response_code` raises AttributeError when the cause is a botocore
    ReadTimeoutError or EndpointConnectionError (their `response` is None), which turned every
    DynamoDB timeout into a 500 instead of a 503 (F-12).
    """
    response = getattr(error.cause, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _only_conditions_failed(error: PynamoDBException) -> bool:
    if not isinstance(error, TransactWriteError):
        return True
    reasons = [reason.code for reason in (error.cancellation_reasons or []) if reason is not None]
    return bool(reasons) and all(code in ("ConditionalCheckFailed", "None", None) for code in reasons)


# --- record <-> item -------------------------------------------------------------------------

def _item(kind: str, pk: str, sk: str, record: Any) -> Item:
    data, top = layout.split(record)
    return Item(pk, sk, kind=kind, data=data, **top)


def _record[R](cls: Callable[..., R], item: Item | None, now: int | None = None) -> R | None:
    if item is None:
        return None
    return layout.rebuild(cls, item.data or {}, {name: getattr(item, name) for name in layout.TOP_LEVEL}, now)


def _generation_is(value: str | None) -> Any:
    return Item.generation.does_not_exist() if value is None else (Item.generation == value)


def _client_record(item: Item | None, now: int | None = None) -> ClientRecord | None:
    return _record(ClientRecord, item, now)


class DynamoStore:
    """All reads and writes of the OAuth state. Methods take records and return records or None."""

    def __init__(self, clock: Callable[[], int] = clock_now) -> None:
        self.clock = clock

    # -- generic helpers --
    def _get(self, pk: str, sk: str) -> Item | None:
        with _translated():
            try:
                return Item.get(pk, sk, consistent_read=True)
            except Item.DoesNotExist:
                return None

    def _batch_get(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """The items at `keys` that exist, by key: one consistent BatchGetItem."""
        with _translated():
            return {(item.pk, item.sk): item for item in Item.batch_get(list(keys), consistent_read=True)}

    def _get_within(self, pk: str, sk: str, limits: Sequence[CounterSlot]) -> Item | None:
        """The item at (pk, sk), read in one call with the throttle counters of `limits`: LimitReached
        when one is full (the item is then not looked at)."""
        if not limits:
            return self._get(pk, sk)
        found = self._batch_get([(pk, sk), *(self._counter_key(slot) for slot in limits)])
        self._check_counters(found, limits)
        return found.get((pk, sk))

    def _check_counters(self, found: dict[tuple[str, str], Item], limits: Sequence[CounterSlot]) -> None:
        now = self.clock()
        for slot in limits:
            item = found.get(self._counter_key(slot))
            if item is not None and live(item.expires_at and int(item.expires_at), now) \
                    and int(item.count or 0) >= slot.limit:
                raise LimitReached(slot)

    def _put_new(self, item: Item) -> None:
        """Create `item` under a key we just generated at random. The retry of a put whose answer was
        lost finds the key taken by our own write: an item holding exactly our data counts as success."""
        try:
            with _translated(AlreadyExists):
                item.save(condition=Item.pk.does_not_exist())
        except AlreadyExists:
            if not self._holds(item):
                raise

    def _holds(self, item: Item) -> bool:
        """Whether the stored item at `item`'s key carries `item`'s data (the read-back of a lost answer)."""
        stored = self._get(item.pk, item.sk)
        return (stored is not None and stored.data == item.data and stored.kind == item.kind
                and stored.disabled == item.disabled and stored.generation == item.generation)

    def _put(self, item: Item) -> None:
        with _translated():
            item.save()

    def _delete(self, pk: str, sk: str, condition: Any = None) -> None:
        with _translated():
            Item(pk, sk).delete(condition=condition)

    def _query(self, pk: str, prefix: str) -> list[Item]:
        with _translated():
            return list(Item.query(pk, Item.sk.startswith(prefix), consistent_read=True))

    # -- clients --
    @staticmethod
    def _client_item(client: ClientRecord) -> Item:
        return _item("client", f"client#{client.client_id}", "client", client)

    @staticmethod
    def _owned_app_item(client: ClientRecord) -> Item:
        """The owner's index item, so Developer Settings lists a user's apps with one Query."""
        owned = OwnedApp(client.owner_id or "", client.client_id, client.name, client.created_at)
        return _item("app", f"user#{client.owner_id}", f"app#{client.client_id}", owned)

    def get_client(self, client_id: str) -> ClientRecord | None:
        """The client; None when absent or expired (an openly registered client left unused)."""
        return _client_record(self._get(f"client#{client_id}", "client"), self.clock())

    def touch_client(self, client_id: str, expires_at: int) -> None:
        """Push an expiring client's expiry forward (never back); a deleted or expired client stays gone."""
        now = self.clock()
        condition = Item.pk.exists() & (Item.expires_at > now) & (Item.expires_at < expires_at)
        try:
            with _translated():
                Item(f"client#{client_id}", "client").update(actions=[Item.expires_at.set(expires_at)],
                                                             condition=condition)
        except ConditionFailed:
            pass  # another request touched it first, or it is gone: nothing to extend

    # -- Client ID Metadata Documents: the validated client, cached until its expiry --
    def get_metadata_client(self, client_id: str) -> ClientRecord | None:
        return _client_record(self._get(f"cimd#{client_id}", "cimd"), self.clock())

    def put_metadata_client(self, client: ClientRecord) -> None:
        self._put(_item("cimd", f"cimd#{client.client_id}", "cimd", client))

    def create_client(self, client: ClientRecord, max_owned: int | None = None) -> None:
        """Write the client and, for an owned app, the owner's index item and one more on the owner's app
        counter, all or nothing. With `max_owned`: QuotaReached, nothing written, when the owner already
        has that many (the counter's condition decides, so parallel creations never exceed it)."""
        item = self._client_item(client)
        for _ in range(_COUNTER_ATTEMPTS):
            try:
                with _translated(), _transaction() as transaction:
                    transaction.save(item, condition=Item.pk.does_not_exist())
                    if client.owner_id:
                        transaction.save(self._owned_app_item(client))
                        self._count_app(transaction, client.owner_id, 1, max_owned)
                return
            except ConditionFailed:
                if self._holds(item):  # our own committed write, retried after a lost answer
                    return
                if not client.owner_id:
                    raise AlreadyExists("ConditionalCheckFailedException") from None
                count = self._owned_count(client.owner_id)
                if max_owned is not None and count is not None and count >= max_owned:
                    raise QuotaReached("the owner has reached the number of applications") from None
        raise AlreadyExists("ConditionalCheckFailedException")

    @staticmethod
    def _count_app(transaction: TransactWrite, owner_id: str, delta: int, limit: int | None = None) -> None:
        """Add `delta` to the owner's app counter inside `transaction`, which fails while the counter is
        missing (`_owned_count` makes it) or would leave 0..limit."""
        condition = Item.count.exists() & (Item.count > 0 if delta < 0 else Item.count >= 0)
        if limit is not None:
            condition &= Item.count < limit
        transaction.update(Item(f"user#{owner_id}", "apps"), actions=[Item.count.add(delta)], condition=condition)

    def _owned_count(self, owner_id: str) -> int | None:
        """The owner's app counter; made from the owner's index items when missing (apps created before
        the counter existed). None when it was missing: the caller retries its transaction. Only the first
        conditional put wins, and nothing changes the apps while no counter exists (every change conditions
        on it), so the count it starts from is exact."""
        item = self._get(f"user#{owner_id}", "apps")
        if item is not None:
            return int(item.count or 0)
        counter = Item(f"user#{owner_id}", "apps", kind="app-count", count=len(self.list_owned_apps(owner_id)))
        with contextlib.suppress(ConditionFailed), _translated():
            counter.save(condition=Item.pk.does_not_exist())
        return None

    def update_client(
        self, client_id: str, change: Callable[[ClientRecord], None], attempts: int = 3
    ) -> ClientRecord | None:
        """Read, `change`, write back: conditional on the stored client being the one `change` saw, so
        a concurrent rotation or edit is never overwritten (the change is re-applied to the fresh item).
        None when the client does not exist; exceptions from `change` abort with nothing written."""
        client = self._update(f"client#{client_id}", "client", _client_record, self._client_item, change, attempts)
        if client is not None and client.owner_id:
            self._put(self._owned_app_item(client))
        return client

    def _update[R](
        self, pk: str, sk: str, load: Callable[[Item | None], R | None], dump: Callable[[R], Item],
        change: Callable[[R], None], attempts: int,
    ) -> R | None:
        """Read, change, write back on the condition that the item is still the one read (else again)."""
        for _ in range(attempts):
            item = self._get(pk, sk)
            record = load(item)
            if item is None or record is None:
                return None
            change(record)
            changed = dump(record)
            unchanged = Item.pk.exists() & (Item.data == item.data)
            for name in ("disabled", "generation"):
                attribute, value = getattr(Item, name), getattr(item, name)
                unchanged &= attribute.does_not_exist() if value is None else (attribute == value)
            try:
                with _translated():
                    changed.save(condition=unchanged)
            except ConditionFailed:
                if not self._holds(changed):  # else: our own write, retried after a lost answer
                    continue
            return record
        raise ConditionFailed("the item changed on every attempt")

    def delete_client(self, client: ClientRecord) -> None:
        """Delete the client and, for an owned app, its index item, one less on the owner's app counter."""
        owned = Item(f"user#{client.owner_id}", f"app#{client.client_id}")
        for _ in range(_COUNTER_ATTEMPTS):
            try:
                with _translated(), _transaction() as transaction:
                    transaction.delete(Item(f"client#{client.client_id}", "client"))
                    if client.owner_id:
                        transaction.delete(owned, condition=Item.pk.exists())  # counted down once only
                        self._count_app(transaction, client.owner_id, -1)
                return
            except ConditionFailed:
                if self._get(owned.pk, owned.sk) is None:  # deleted already (ours retried, or another's)
                    self._delete(f"client#{client.client_id}", "client")
                    return
                self._owned_count(client.owner_id or "")
        raise ConditionFailed("the application's counter changed on every attempt")

    def list_owned_apps(self, owner_id: str) -> list[OwnedApp]:
        return [r for r in (_record(OwnedApp, i) for i in self._query(f"user#{owner_id}", "app#")) if r]

    # -- users --
    def create_user(self, user: UserRecord) -> None:
        """The user item and its email item in one transaction, so login reads by key."""
        item = _item("user", f"user#{user.user_id}", "user", user)
        email = Item(f"email#{user.email}", "email", kind="email", data={"user_id": user.user_id})
        try:
            with _translated(AlreadyExists), _transaction() as transaction:
                transaction.save(item, condition=Item.pk.does_not_exist())
                transaction.save(email, condition=Item.pk.does_not_exist())
        except AlreadyExists:
            if not (self._holds(item) and self._holds(email)):  # not our own write retried: the email is taken
                raise

    def get_user(self, user_id: str) -> UserRecord | None:
        return _record(UserRecord, self._get(f"user#{user_id}", "user"))

    def find_user_id(self, email: str) -> str | None:
        item = self._get(f"email#{email}", "email")
        return item.data["user_id"] if item is not None else None

    # -- known devices (a browser that signed in to an account: exempt from the per-account login limit) --
    def remember_device(self, device_digest: str, user_id: str, expires_at: int) -> None:
        self._put(Item(f"device#{device_digest}", "device", kind="device", data={"user_id": user_id},
                       expires_at=expires_at))

    def device_user_id(self, device_digest: str) -> str | None:
        item = self._get(f"device#{device_digest}", "device")
        if item is None or not live(item.expires_at and int(item.expires_at), self.clock()):
            return None
        return (item.data or {}).get("user_id")

    def update_user(self, user_id: str, change: Callable[[UserRecord], None]) -> UserRecord | None:
        """Change a user without overwriting a concurrent change (see update_client); None when absent."""

        def load(item: Item | None) -> UserRecord | None:
            return _record(UserRecord, item)

        def dump(user: UserRecord) -> Item:
            return _item("user", f"user#{user.user_id}", "user", user)

        return self._update(f"user#{user_id}", "user", load, dump, change, 3)

    def delete_user(self, user: UserRecord) -> None:
        """The user and its email item (operator command); its grants stop with it (oauth/standing.py)."""
        with _translated(), TransactWrite(connection=shared_connection()) as transaction:
            transaction.delete(Item(f"user#{user.user_id}", "user"))
            transaction.delete(Item(f"email#{user.email}", "email"))

    # -- sessions --
    def put_session(self, session: SessionRecord) -> None:
        self._put_new(_item("session", f"session#{session.session_digest}", "session", session))

    def get_session(self, session_digest: str) -> SessionRecord | None:
        return _record(SessionRecord, self._get(f"session#{session_digest}", "session"), self.clock())

    def delete_session(self, session_digest: str) -> None:
        self._delete(f"session#{session_digest}", "session")

    # -- parked authorization requests --
    def put_authorization_request(self, request: AuthorizationRequestRecord) -> None:
        self._put_new(_item("authreq", f"authreq#{request.request_digest}", "authreq", request))

    def get_authorization_request(self, request_digest: str) -> AuthorizationRequestRecord | None:
        """The parked request; None when absent, expired or already consumed."""
        item = self._get(f"authreq#{request_digest}", "authreq")
        if item is not None and item.used_at is not None:
            return None
        return _record(AuthorizationRequestRecord, item, self.clock())

    def consume_authorization_request(self, request_digest: str) -> None:
        """Single use: marks the request used for exactly one caller, and only while unexpired (it then
        lapses with its TTL). Marked, not deleted, so that botocore's retry of our own write whose answer
        was lost recognises it by its marker instead of finding the request gone."""
        now = self.clock()
        item = Item(f"authreq#{request_digest}", "authreq")
        marker = uuid.uuid4().hex
        try:
            with _translated():
                item.update(actions=[Item.used_at.set(now), Item.successor_digest.set(marker)],
                            condition=Item.pk.exists() & Item.used_at.does_not_exist() & (Item.expires_at > now))
        except ConditionFailed:
            if not self._spent_by(item, marker):
                raise

    # -- authorization codes --
    def put_code(self, code: CodeRecord) -> None:
        self._put_new(_item("code", f"code#{code.code_digest}", "code", code))

    def get_code(
        self, code_digest: str, include_used: bool = True, limits: Sequence[CounterSlot] = ()
    ) -> CodeRecord | None:
        """The code even when already used (reuse detection needs it); None when absent or expired.
        With `limits`: read in the same call as those throttle counters, LimitReached when one is full."""
        record = _record(CodeRecord, self._get_within(f"code#{code_digest}", "code", limits), self.clock())
        if record is not None and record.used_at is not None and not include_used:
            return None
        return record

    def redeem_code(
        self,
        code: CodeRecord,
        grant: GrantRecord,
        refresh_token: RefreshTokenRecord | None,
    ) -> None:
        """Mark the code used, write the grant and the refresh token: all or nothing, and only while the
        client, the user and the consent still stand with the generations the code was issued under.

        Raises ConditionFailed when the code was already used or has expired meanwhile, the client or
        user is gone, disabled or bulk-revoked, or the user withdrew the consent.
        """
        now = self.clock()
        code_item = Item(f"code#{code.code_digest}", "code")
        # which redemption spent the code: the read-back below tells our own lost answer from a replay
        redemption = refresh_token.token_digest if refresh_token is not None else uuid.uuid4().hex
        try:
            self._redeem(code_item, grant, refresh_token, redemption, now)
        except ConditionFailed:
            if not self._spent_by(code_item, redemption):
                raise

    def _spent_by(self, item: Item, marker: str) -> bool:
        """Whether the single-use item was spent by the write that carried `marker` (ours)."""
        stored = self._get(item.pk, item.sk)
        return stored is not None and stored.used_at is not None and stored.successor_digest == marker

    def _redeem(
        self, code_item: Item, grant: GrantRecord, refresh_token: RefreshTokenRecord | None, redemption: str, now: int
    ) -> None:
        with _translated(), _transaction() as transaction:
            transaction.update(
                code_item,
                actions=[Item.used_at.set(now), Item.successor_digest.set(redemption)],
                condition=Item.pk.exists() & Item.used_at.does_not_exist() & (Item.expires_at > now),
            )
            transaction.save(self._grant_item(grant), condition=Item.pk.does_not_exist())
            if refresh_token is not None:
                transaction.save(self._refresh_item(refresh_token), condition=Item.pk.does_not_exist())
            # a revocation that committed first (revoke access, delete the app, disable or bulk-revoke)
            # fails this transaction; one that commits after ends the grant (oauth/standing.py)
            self._check_authority(transaction, grant.client_id, grant.user_id, grant)  # the code's, carried

    def _check_authority(
        self, transaction: TransactWrite, client_id: str, user_id: str, authority: Authority
    ) -> None:
        """Client and user exist, are enabled and keep their generations; the consent stands with its own.

        Checked inside the issuing transaction, so it costs no read, and every withdrawal of authority
        writes one of these three items: whichever of the two commits second sees the other. A metadata-
        document client has no client item (nothing of it can be withdrawn but the consent).
        """
        enabled = Item.pk.exists() & (Item.disabled.does_not_exist() | (Item.disabled == False))  # noqa: E712
        if not is_metadata_client_id(client_id):
            unexpired = Item.expires_at.does_not_exist() | (Item.expires_at > self.clock())  # unused open clients
            transaction.condition_check(Item, f"client#{client_id}", "client",
                                        condition=enabled & unexpired & _generation_is(authority.client_generation))
        transaction.condition_check(Item, f"user#{user_id}", "user",
                                    condition=enabled & _generation_is(authority.user_generation))
        transaction.condition_check(Item, f"user#{user_id}", f"consent#{client_id}",
                                    condition=Item.data.exists() & _generation_is(authority.consent_generation))

    def get_standing(self, client_id: str, user_id: str, grant_id: str) -> Standing:
        """The grant and what it stands on (client, user, consent): four items, one consistent BatchGetItem."""
        keys = {
            "grant": (f"client#{client_id}", f"grant#{grant_id}"),
            "client": (f"client#{client_id}", "client"),
            "user": (f"user#{user_id}", "user"),
            "consent": (f"user#{user_id}", f"consent#{client_id}"),
        }
        found = self._batch_get(list(keys.values()))
        return Standing(
            grant=_record(GrantRecord, found.get(keys["grant"]), self.clock()),
            client=_client_record(found.get(keys["client"]), self.clock()),
            user=_record(UserRecord, found.get(keys["user"])),
            consent=self._consent(found.get(keys["consent"])),
        )

    # -- grants --
    @staticmethod
    def _grant_item(grant: GrantRecord) -> Item:
        return _item("grant", f"client#{grant.client_id}", f"grant#{grant.grant_id}", grant)

    def get_grant(self, client_id: str, grant_id: str) -> GrantRecord | None:
        """The grant even when revoked (callers check `active`); None when absent or expired."""
        return _record(GrantRecord, self._get(f"client#{client_id}", f"grant#{grant_id}"), self.clock())

    def revoke_grant(self, client_id: str, grant_id: str) -> None:
        """Set the family's revoked flag (idempotent: the first revocation time is kept)."""
        with _translated():
            try:
                Item(f"client#{client_id}", f"grant#{grant_id}").update(
                    actions=[Item.revoked_at.set(Item.revoked_at | self.clock())],
                    condition=Item.pk.exists(),
                )
            except PynamoDBException as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise

    # -- refresh tokens --
    @staticmethod
    def _refresh_item(token: RefreshTokenRecord) -> Item:
        return _item("refresh", f"rt#{token.token_digest}", "rt", token)

    def get_refresh_token(
        self, token_digest: str, limits: Sequence[CounterSlot] = ()
    ) -> RefreshTokenRecord | None:
        """The token even when already rotated (reuse detection); None when absent or expired.
        With `limits`: read in the same call as those throttle counters, LimitReached when one is full."""
        item = self._get_within(f"rt#{token_digest}", "rt", limits)
        return _record(RefreshTokenRecord, item, self.clock())

    def rotate_refresh_token(
        self,
        old: RefreshTokenRecord,
        new: RefreshTokenRecord,
        grace_response: str,
    ) -> None:
        """Spend the old token and store its successor in one transaction, while the grant is active
        (not revoked, not past its absolute expiry) and the authority it was issued under still stands.

        Raises ConditionFailed when the old token was spent meanwhile, the grant is revoked or expired,
        or its client, user or consent is gone, disabled or bulk-revoked.
        """
        try:
            self._rotate(old, new, grace_response, self.clock())
        except ConditionFailed:
            if not self._spent_by(Item(f"rt#{old.token_digest}", "rt"), new.token_digest):
                raise  # else: our own rotation, retried after a lost answer

    def _rotate(self, old: RefreshTokenRecord, new: RefreshTokenRecord, grace_response: str, now: int) -> None:
        with _translated(), _transaction() as transaction:
            transaction.update(
                Item(f"rt#{old.token_digest}", "rt"),
                actions=[
                    Item.used_at.set(now),
                    Item.successor_digest.set(new.token_digest),
                    Item.grace_response.set(grace_response),
                ],
                condition=Item.pk.exists() & Item.used_at.does_not_exist() & (Item.expires_at > now),
            )
            transaction.save(self._refresh_item(new), condition=Item.pk.does_not_exist())
            transaction.condition_check(
                Item,
                f"client#{old.client_id}",
                f"grant#{old.grant_id}",
                condition=Item.pk.exists() & Item.revoked_at.does_not_exist() & (Item.expires_at > now),
            )
            self._check_authority(transaction, old.client_id, old.user_id, old)

    # -- consents --
    def get_consent(self, user_id: str, client_id: str) -> ConsentRecord | None:
        return self._consent(self._get(f"user#{user_id}", f"consent#{client_id}"))

    @staticmethod
    def _consent(item: Item | None) -> ConsentRecord | None:
        if item is None or not item.data:
            return None
        values = {k: v for k, v in item.data.items() if k != "grant_ids"}  # written by older versions
        return ConsentRecord(**values, generation=item.generation)

    def save_consent_scopes(
        self, user_id: str, client_id: str, scopes: list[str], granted_at: int, resources: list[str] | None = None
    ) -> str:
        """Remember what the user granted; returns the consent's generation (a new one when the consent is new)."""
        data = {"user_id": user_id, "client_id": client_id, "scopes": scopes, "granted_at": granted_at,
                "resources": resources or []}
        item = Item(f"user#{user_id}", f"consent#{client_id}")
        with _translated():
            item.update(
                actions=[
                    Item.data.set(data),
                    Item.kind.set("consent"),
                    Item.generation.set(Item.generation | new_generation()),
                ]
            )
        assert item.generation is not None
        return item.generation

    def list_consents(self, user_id: str) -> list[ConsentRecord]:
        records = (self._consent(i) for i in self._query(f"user#{user_id}", "consent#"))
        return [r for r in records if r is not None]

    def delete_consent(self, user_id: str, client_id: str) -> None:
        """Withdraw the consent: one write ends every grant issued under it (their generation is gone)."""
        self._delete(f"user#{user_id}", f"consent#{client_id}")

    # -- signing keys --
    def list_signing_keys(self) -> list[SigningKeyRecord]:
        return [r for r in (_record(SigningKeyRecord, i) for i in self._query("keyring", "key#")) if r]

    def put_signing_key(self, key: SigningKeyRecord) -> None:
        self._put(_item("signing-key", "keyring", f"key#{key.kid}", key))

    def delete_signing_key(self, kid: str) -> None:
        self._delete("keyring", f"key#{kid}")

    # -- resource servers (RFC 8707): one partition, read by key, listed by one Query --
    @staticmethod
    def _resource_server_item(server: ResourceServerRecord) -> Item:
        return _item("resource-server", "resource-servers", f"rs#{server.identifier}", server)

    def create_resource_server(self, server: ResourceServerRecord) -> None:
        with _translated(AlreadyExists):
            self._resource_server_item(server).save(condition=Item.sk.does_not_exist())

    def get_resource_server(self, identifier: str) -> ResourceServerRecord | None:
        return _record(ResourceServerRecord, self._get("resource-servers", f"rs#{identifier}"))

    def list_resource_servers(self) -> list[ResourceServerRecord]:
        items = self._query("resource-servers", "rs#")
        return [r for r in (_record(ResourceServerRecord, i) for i in items) if r]

    def delete_resource_server(self, identifier: str) -> bool:
        """False when there was no such resource server."""
        try:
            self._delete("resource-servers", f"rs#{identifier}", Item.sk.exists())
        except ConditionFailed:
            return False
        return True

    # -- initial access tokens for dynamic registration --
    def put_registration_token(self, token: RegistrationTokenRecord) -> None:
        self._put(_item("registration-token", f"regtoken#{token.token_digest}", "regtoken", token))

    def get_registration_token(self, token_digest: str) -> RegistrationTokenRecord | None:
        item = self._get(f"regtoken#{token_digest}", "regtoken")
        return _record(RegistrationTokenRecord, item, self.clock())

    # -- rate limiting (a plain counter: add one, then compare; see take_slot for reserve-before-verify) --
    def count_attempt(self, key: str, window_seconds: int) -> int:
        """Atomically add one to this window's counter (shared across Lambda instances) and return it."""
        now = self.clock()
        window = now // window_seconds
        with _translated():
            item = Item(f"rate#{key}", f"window#{window}")
            item.update(
                actions=[
                    Item.count.add(1),
                    Item.kind.set("rate"),
                    Item.expires_at.set((window + 1) * window_seconds),
                ]
            )
            return int(item.count or 0)

    def attempts(self, key: str, window_seconds: int) -> int:
        return self.counter(CounterSlot(key, window_seconds, 0))

    # -- throttles: counters in fixed windows, and backoff blocks (the policy lives in oauth/throttle.py) --
    def take_slot(self, slot: CounterSlot) -> bool:
        """Reserve one unit of this window's counter if it is below its limit (one conditional update,
        atomic across Lambda instances); False, with nothing counted, when it is full."""
        now = self.clock()
        window_end = (now // slot.window_seconds + 1) * slot.window_seconds
        try:
            with _translated():
                self._counter(slot, now).update(
                    actions=[Item.count.add(1), Item.kind.set("rate"), Item.expires_at.set(window_end)],
                    condition=Item.count.does_not_exist() | (Item.count < slot.limit),
                )
        except ConditionFailed:
            return False
        return True

    def give_back_slot(self, slot: CounterSlot) -> None:
        """Return one unit of this window's counter (a reservation that turned out not to count)."""
        now = self.clock()
        with contextlib.suppress(ConditionFailed), _translated():  # the window ended meanwhile: nothing to return
            self._counter(slot, now).update(actions=[Item.count.add(-1)], condition=Item.count > 0)

    def check_limits(self, limits: Sequence[CounterSlot]) -> None:
        """LimitReached when one of these throttle counters is full (one BatchGetItem; none for no limits)."""
        if limits:
            self._check_counters(self._batch_get([self._counter_key(slot) for slot in limits]), limits)

    def counter(self, slot: CounterSlot) -> int:
        """The units taken in the current window (0 when none or expired)."""
        item = self._get(*self._counter_key(slot))
        if item is None or not live(item.expires_at and int(item.expires_at), self.clock()):
            return 0
        return int(item.count or 0)

    def add_strike(self, key: str, backoff: Callable[[int], int], memory_seconds: int) -> int:
        """Count one more strike against `key` (kept `memory_seconds` after the last) and block it for
        `backoff(strikes)` seconds from now; returns the time the block ends."""
        now = self.clock()
        item = Item(f"rate#{key}", "block")
        with _translated():
            item.update(actions=[Item.count.add(1), Item.kind.set("rate-block"),
                                 Item.expires_at.set(now + memory_seconds)])
        until = now + backoff(int(item.count or 1))
        with contextlib.suppress(ConditionFailed), _translated():  # a concurrent strike blocked for longer
            item.update(actions=[Item.blocked_until.set(until)],
                        condition=Item.blocked_until.does_not_exist() | (Item.blocked_until < until))
        return until

    def blocked_until(self, key: str) -> int | None:
        item = self._get(f"rate#{key}", "block")
        if item is None or item.blocked_until is None or int(item.blocked_until) <= self.clock():
            return None
        return int(item.blocked_until)

    def clear_throttle(self, key: str) -> int:
        """Operator: forget every counter and block of `key`; returns how many items were deleted."""
        with _translated():
            items = list(Item.query(f"rate#{key}", consistent_read=True))
        for item in items:
            self._delete(item.pk, item.sk)
        return len(items)

    @staticmethod
    def _counter(slot: CounterSlot, now: int) -> Item:
        return Item(f"rate#{slot.key}", f"window#{now // slot.window_seconds}")

    def _counter_key(self, slot: CounterSlot) -> tuple[str, str]:
        """The key of this window's counter of `slot`."""
        return f"rate#{slot.key}", f"window#{self.clock() // slot.window_seconds}"

    def delete_registration_token(self, token_digest: str) -> None:
        self._delete(f"regtoken#{token_digest}", "regtoken")

    # -- operator commands only (Scan) --
    def scan_records[R](self, kind: str, load: Callable[[Item], R | None]) -> list[R]:
        """Every item of one kind (a Scan: operator commands only)."""
        with _translated():
            return [r for r in (load(item) for item in Item.scan(Item.kind == kind)) if r is not None]

    def scan_users(self) -> list[UserRecord]:
        return self.scan_records("user", lambda item: _record(UserRecord, item))

    def scan_clients(self) -> list[ClientRecord]:
        return self.scan_records("client", _client_record)

    def scan_registration_tokens(self) -> list[RegistrationTokenRecord]:
        now = self.clock()
        return self.scan_records("registration-token", lambda item: _record(RegistrationTokenRecord, item, now))
