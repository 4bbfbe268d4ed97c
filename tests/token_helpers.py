"""Fixtures for the token endpoint's tests: clients, a user and codes written straight to the store
(as /authorize would), and small helpers to call POST /token through chalice's test client."""

from __future__ import annotations

import base64
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import quote_plus, urlencode

from chalicelib import clock
from chalicelib.crypto.secrets import digest, new_id, new_token
from chalicelib.oauth.clients import ClientAuthLimits
from chalicelib.oauth.throttle import Limit
from chalicelib.records import ClientRecord, ClientSecret, CodeRecord, UserRecord

V = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 App. B
CH = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ALL = "read:analysis read:project write:analysis write:project"
CODE_FLOW = ["authorization_code", "refresh_token"]
# the default client-authentication limits, for tests that call oauth/clients.authenticate directly
CLIENT_LIMITS = ClientAuthLimits(Limit("client-auth", 50, 60), Limit("client-auth-source", 200, 60))


@dataclass
class Client:
    client_id: str
    secret: str | None
    redirect_uris: list[str]
    record: ClientRecord


@dataclass
class World:
    services: Any
    user_id: str
    clients: dict[str, Client] = field(default_factory=dict)

    @property
    def store(self):
        return self.services.store

    def add_client(
        self,
        name: str,
        redirect_uris: list[str],
        method: str = "client_secret_basic",
        grant_types: list[str] | None = None,
        scopes: str = ALL,
        secret: str | None = None,
    ) -> Client:
        secret = None if method == "none" else (secret or new_token())
        record = ClientRecord(
            client_id=new_id("app_"),
            name=name,
            redirect_uris=redirect_uris,
            scopes=scopes.split(),
            grant_types=grant_types if grant_types is not None else list(CODE_FLOW),
            auth_method=method,
            secrets=[ClientSecret(digest(secret))] if secret else [],
            created_at=clock.now(),
        )
        self.store.create_client(record)
        client = self.clients[name] = Client(record.client_id, secret, redirect_uris, record)
        return client

    def issue_code(
        self,
        client: Client,
        *,
        redirect_uri: str | None = None,
        redirect_uri_given: bool = True,
        challenge: str | None = CH,
        scope: str = "read:analysis write:analysis",
        user_id: str | None = None,
        lifetime: int = 60,
        resources: list[str] | None = None,
    ) -> str:
        """A code as /authorize issues it: only its digest is stored, bound to client, URI, user and PKCE."""
        code = new_token()
        now = clock.now()
        # /authorize records the consent before it issues a code; redemption requires it to stand
        generation = self.store.save_consent_scopes(user_id or self.user_id, client.client_id, scope.split(), now)
        self.store.put_code(
            CodeRecord(
                code_digest=digest(code),
                client_id=client.client_id,
                redirect_uri=redirect_uri or client.redirect_uris[0],
                redirect_uri_given=redirect_uri_given,
                user_id=user_id or self.user_id,
                scope=scope,
                code_challenge=challenge,
                grant_id=new_id("gr_"),
                auth_time=now,
                expires_at=now + lifetime,
                resources=list(resources or []),
                consent_generation=generation,
            )
        )
        return code


def make_world(services) -> World:
    user = UserRecord(new_id("usr_"), f"{new_id()}@example.com".lower(), "not-a-real-hash", clock.now())
    services.store.create_user(user)
    world = World(services, user.user_id)
    world.add_client("C1", ["https://c1.example/cb"])
    world.add_client("C2", ["https://c2.example/cb"])
    world.add_client("P1", ["http://127.0.0.1/cb"], method="none")
    world.add_client("P2", ["http://127.0.0.1/cb2"], method="none")
    world.add_client("M1", ["https://m1.example/a", "https://m1.example/b"])
    world.add_client("POST1", ["https://post.example/cb"], method="client_secret_post")
    world.add_client("NORT", ["https://nort.example/cb"], grant_types=["authorization_code"])
    world.add_client("CC1", [], grant_types=["client_credentials"], scopes="read:analysis read:project")
    return world


def freeze_clock(monkeypatch) -> None:
    """Stop real time for the test (boundary tests), so only clock.travel moves it."""
    import time
    import types

    frozen = int(time.time())
    monkeypatch.setattr(clock, "time", types.SimpleNamespace(time=lambda: frozen))


def endpoint_for(services):
    """The oauth/ handler itself (for threads: the chalice test client is not meant for concurrent use)."""
    return services.token_endpoint


def basic(client_id: str, secret: str | None, scheme: str = "Basic") -> dict[str, str]:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined and base64-encoded."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret or '')}".encode()
    return {"Authorization": f"{scheme} {base64.b64encode(raw).decode()}"}


def auth_for(client: Client) -> dict[str, str]:
    return basic(client.client_id, client.secret) if client.record.auth_method == "client_secret_basic" else {}


def body_auth(client: Client) -> dict[str, str]:
    if client.record.auth_method == "client_secret_post":
        return {"client_id": client.client_id, "client_secret": client.secret or ""}
    if client.record.auth_method == "none":
        return {"client_id": client.client_id}
    return {}


def post_token(
    http, params: dict[str, str] | list[tuple[str, str]] | bytes | str, headers: dict[str, str] | None = None
):
    body = params if isinstance(params, (bytes, str)) else urlencode(params)
    return http.post("/token", headers={**FORM, **(headers or {})}, body=body)


def exchange(http, client: Client, code: str, **overrides: str | None):
    """TK: the authorization_code request with the client's registered authentication."""
    params: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uris[0],
        "code_verifier": V,
        **body_auth(client),
    }
    params.update(overrides)
    return post_token(http, {k: v for k, v in params.items() if v is not None}, auth_for(client))


def refresh(http, client: Client, refresh_token: str, **overrides: str | None):
    """RF: the refresh_token request with the client's registered authentication."""
    params: dict[str, str | None] = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                                     **body_auth(client)}
    params.update(overrides)
    return post_token(http, {k: v for k, v in params.items() if v is not None}, auth_for(client))


def body(response) -> dict[str, Any]:
    return json.loads(response.body)


def assert_error(response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.body)
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    payload = body(response)
    assert payload["error"] == error, payload
    return payload


def tokens_of(response) -> dict[str, Any]:
    assert response.status_code == 200, (response.status_code, response.body)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    return body(response)


def _clients(services) -> list[Any]:
    from chalicelib.store.dynamo import shared_connection

    return [shared_connection().client, services.kms()]


@contextlib.contextmanager
def aws_calls(services) -> Iterator[list[str]]:
    """The DynamoDB and KMS API operations made inside the block, seen by botocore before-call hooks."""
    calls: list[str] = []

    def record(model, **_: Any) -> None:
        calls.append(f"{model.service_model.service_name}:{model.name}")

    clients = _clients(services)
    for client in clients:
        client.meta.events.register("before-call", record)
    try:
        yield calls
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", record)


@contextlib.contextmanager
def fault(services, operation: str, code: str, reasons: list[str] | None = None, *, service: str = "dynamodb",
          message: str = "injected fault") -> Iterator[list[str]]:
    """Make an operation of DynamoDB (or of KMS: service="kms") fail as if its SDK retries were exhausted
    (with `reasons`: a cancelled transaction)."""
    from botocore.exceptions import ClientError

    hits: list[str] = []

    def fail(model, **_: Any) -> None:
        hits.append(model.name)
        error: dict[str, Any] = {"Error": {"Code": code, "Message": message}}
        if reasons is not None:
            error["CancellationReasons"] = [{"Code": reason} for reason in reasons]
        raise ClientError(error, model.name)

    dynamodb, kms = _clients(services)
    events = (kms if service == "kms" else dynamodb).meta.events
    events.register(f"before-call.{service}.{operation}", fail)
    try:
        yield hits
    finally:
        events.unregister(f"before-call.{service}.{operation}", fail)


@contextlib.contextmanager
def lost_answer(services, operation: str, times: int = 1) -> Iterator[list[str]]:
    """DynamoDB applies `operation`, then its answer is lost (a read timeout) `times` times: botocore
    retries the same request, as it does in AWS. Each hit records the request's ClientRequestToken."""
    from botocore.exceptions import ReadTimeoutError

    from chalicelib.store.dynamo import shared_connection

    hits: list[str] = []

    def lose(request, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        if target == f"DynamoDB_20120810.{operation}" and len(hits) < times:
            hits.append(json.loads(request.body or b"{}").get("ClientRequestToken", ""))
            raise ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    events = shared_connection().client.meta.events
    # on moto's own event name, last: botocore calls handlers of a more specific name first
    events.register_last("before-send", lose)
    try:
        yield hits
    finally:
        events.unregister("before-send", lose)
