"""Store operations only tests need, on DynamoStore and MemoryStore alike: replacing a record whole, seeding a
grant or a refresh token on its own (the request paths write them in the code-exchange and refresh
transactions), listing ids and counting items by kind. Not part of either store: no request path may use them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from chalicelib.records import ClientRecord, ConditionFailed, GrantRecord, RefreshTokenRecord, UserRecord
from chalicelib.store import dynamo, memory
from chalicelib.store.api_store import ProjectRecord
from chalicelib.store.dynamo import ApiItem, Item


def _replaced_by(record: Any) -> Callable[[Any], None]:
    def replace(current: Any) -> None:
        for field in dataclasses.fields(record):
            setattr(current, field.name, getattr(record, field.name))
    return replace


def save_client(store: Any, client: ClientRecord) -> None:
    """Overwrite a stored client with `client` (another writer's change, a test's setup); ConditionFailed
    when it is gone (a deleted app is not brought back)."""
    if store.update_client(client.client_id, _replaced_by(client)) is None:
        raise ConditionFailed("the client is gone")


def save_user(store: Any, user: UserRecord) -> None:
    """Overwrite a stored user with `user`; ConditionFailed when it is gone."""
    if store.update_user(user.user_id, _replaced_by(user)) is None:
        raise ConditionFailed("the user is gone")


def put_grant(store: Any, grant: GrantRecord) -> None:
    """A grant on its own (AlreadyExists if its id is taken)."""
    if isinstance(store, memory.MemoryStore):
        store._put_new(store._grant_key(grant), memory._item("grant", grant))
    else:
        store._put_new(store._grant_item(grant))


def put_refresh_token(store: Any, token: RefreshTokenRecord) -> None:
    """A refresh token on its own (AlreadyExists if its digest is taken)."""
    if isinstance(store, memory.MemoryStore):
        store._put_new(store._refresh_key(token), memory._item("refresh", token))
    else:
        store._put_new(store._refresh_item(token))


def list_client_grants(store: Any, client_id: str) -> list[GrantRecord]:
    """Every grant of a client, revoked or expired ones included (one consistent Query)."""
    if isinstance(store, memory.MemoryStore):
        records = [memory._record(GrantRecord, item) for _, item in store._query(f"client#{client_id}", "grant#")]
    else:
        records = [dynamo._record(GrantRecord, item) for item in store._query(f"client#{client_id}", "grant#")]
    return [record for record in records if record]


def list_client_grant_ids(store: Any, client_id: str) -> list[str]:
    return [grant.grant_id for grant in list_client_grants(store, client_id)]


def scan_kinds(store: Any) -> dict[str, int]:
    """How many items of each kind the table holds (a Scan on DynamoDB)."""
    if isinstance(store, memory.MemoryStore):
        kinds = [item.get("kind") for item in store._items.values()]
    else:
        kinds = [item.kind for item in Item.scan()]
    return {kind: kinds.count(kind) for kind in dict.fromkeys(kinds)}


def drop_app_counter(store: Any, owner_id: str) -> None:
    """Forget an owner's app counter, as for apps created before the counter existed."""
    if isinstance(store, memory.MemoryStore):
        store._items.pop((f"user#{owner_id}", "apps"), None)
    else:
        Item(f"user#{owner_id}", "apps").delete()


def pending_authorization_requests(store: Any) -> int:
    """Parked authorization requests not consumed yet (a consumed one stays, marked used, until its TTL)."""
    if isinstance(store, memory.MemoryStore):
        return sum(1 for item in store._items.values() if item.get("kind") == "authreq" and "used_at" not in item)
    return sum(1 for item in Item.scan() if item.kind == "authreq" and item.used_at is None)


def list_projects(user_id: str) -> list[ProjectRecord]:
    """The user's projects in the API table."""
    items = ApiItem.query(f"user#{user_id}", ApiItem.sk.startswith("project#"), consistent_read=True)
    return [ProjectRecord(created_at=int(item.created_at), **item.data) for item in items]
