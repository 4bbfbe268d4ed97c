"""RFC 7591 POST /register and RFC 7592 management at the registration_client_uri."""

from __future__ import annotations

import json

import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from chalicelib.oauth import clients as client_auth
from chalicelib.oauth import registration
from chalicelib.oauth.errors import InvalidRedirectUri
from chalicelib.oauth.standing import grant_in_force
from chalicelib.records import RegistrationTokenRecord
from tests.developer_support import ISS, issue_grant, plain_user, table_dump
from tests.token_helpers import CLIENT_LIMITS

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

TOKEN = "initial-access-token-for-tests"
JSON = {"Content-Type": "application/json"}
WEB = {"client_name": "Registered App", "redirect_uris": ["https://app.example/callback"]}


@pytest.fixture
def reg(aws, http):
    now = clock.now()
    aws.store.put_registration_token(RegistrationTokenRecord(digest(TOKEN), now, now + 3600, "tests"))
    return http


def post(http, metadata, token: str | None = TOKEN, headers=None):
    auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
    body = metadata if isinstance(metadata, bytes) else json.dumps(metadata).encode()
    return http.post("/register", headers={**JSON, **auth, **(headers or {})}, body=body)


def body(response):
    return json.loads(response.body)


def manage(http, method: str, uri: str, token: str, metadata=None):
    path = uri.removeprefix(ISS)
    headers = {"Authorization": f"Bearer {token}"}
    if metadata is None:
        return getattr(http, method)(path, headers=headers)
    return getattr(http, method)(path, headers={**headers, **JSON}, body=json.dumps(metadata).encode())


# -- registration ---------------------------------------------------------------------------------

@pytest.mark.store("dynamo")  # reads the DynamoDB items at rest
def test_confidential_registration_returns_credentials_once_and_stores_digests(aws, reg):
    response = post(reg, {**WEB, "scope": "read:analysis write:analysis"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    result = body(response)
    assert result["client_id"].startswith("app_")
    assert result["client_name"] == "Registered App"
    assert result["redirect_uris"] == ["https://app.example/callback"]
    assert result["grant_types"] == ["authorization_code", "refresh_token"]
    assert result["response_types"] == ["code"]
    assert result["token_endpoint_auth_method"] == "client_secret_basic"
    assert result["scope"] == "read:analysis write:analysis"
    assert result["client_secret_expires_at"] == 0
    assert abs(result["client_id_issued_at"] - clock.now()) <= 2
    assert result["registration_client_uri"] == f"{ISS}/register/{result['client_id']}"
    secret, access_token = result["client_secret"], result["registration_access_token"]
    assert len(secret) >= 43 and len(access_token) >= 43 and secret != access_token

    stored = aws.store.get_client(result["client_id"])
    assert stored.owner_id is None
    assert [s.digest for s in stored.secrets] == [digest(secret)]
    assert stored.registration_token_digest == digest(access_token)
    dump = table_dump(aws)
    assert secret not in dump and access_token not in dump and TOKEN not in dump

    # the issued secret really authenticates the client
    credentials = client_auth.client_credentials(None, {"client_id": result["client_id"], "client_secret": secret})
    with pytest.raises(Exception, match="client authentication failed"):
        client_auth.authenticate(aws.clients, credentials, clock.now(), CLIENT_LIMITS)  # registered for basic, not post
    basic = client_auth.ClientCredentials(result["client_id"], secret, "client_secret_basic", True)
    assert client_auth.authenticate(aws.clients, basic, clock.now(), CLIENT_LIMITS)[0].client_id == result["client_id"]


def test_public_native_client_gets_no_secret(reg):
    metadata = {"client_name": "CLI", "redirect_uris": ["com.example.cli:/callback", "http://127.0.0.1/cb"],
                "token_endpoint_auth_method": "none"}
    response = post(reg, metadata)
    assert response.status_code == 201
    result = body(response)
    assert "client_secret" not in result and "client_secret_expires_at" not in result
    assert result["token_endpoint_auth_method"] == "none"
    assert result["registration_access_token"]


def test_machine_client_registers_for_client_credentials(reg):
    metadata = {"client_name": "Nightly", "grant_types": ["client_credentials"], "response_types": [],
                "token_endpoint_auth_method": "client_secret_post", "scope": "read:analysis"}
    result = body(post(reg, metadata))
    assert result["grant_types"] == ["client_credentials"] and result["redirect_uris"] == []
    assert result["client_secret"]


def test_unknown_metadata_is_ignored_and_server_fields_cannot_be_chosen(aws, reg):
    metadata = {**WEB, "client_id": "chosen-id", "client_secret": "chosen-secret", "logo_uri": "https://x/y.png"}
    result = body(post(reg, metadata))
    assert result["client_id"] != "chosen-id" and result["client_secret"] != "chosen-secret"
    assert "logo_uri" not in result
    assert aws.store.get_client("chosen-id") is None


def test_registration_endpoint_is_advertised(reg):
    metadata = body(reg.get("/.well-known/oauth-authorization-server"))
    assert metadata["registration_endpoint"] == f"{ISS}/register"


# -- the initial access token ---------------------------------------------------------------------

@pytest.mark.store("dynamo")  # reads the DynamoDB items at rest
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": ""},
                                     {"Authorization": TOKEN}])
def test_missing_token_is_401_with_a_bare_bearer_challenge(aws, reg, headers):
    """No Bearer credentials (none, or another scheme): RFC 6750 §3.1, no error code in the challenge."""
    response = post(reg, WEB, token=None, headers=headers)
    assert response.status_code == 401
    assert body(response)["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="clipron"'
    assert table_dump(aws).count('"kind": "client"') == 0


@pytest.mark.parametrize(
    "authorization",
    ["Bearer wrong-token", "Bearer", "Bearer a b", "Bearer " + "x" * 600, "Bearer " + "x" * 5000],
)
def test_invalid_token_is_401_invalid_token(reg, authorization):
    response = post(reg, WEB, token=None, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert body(response)["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="clipron", error="invalid_token"')


def test_expired_initial_access_token_is_refused(reg):
    assert post(reg, WEB).status_code == 201
    clock.travel(3600)
    response = post(reg, WEB)
    assert response.status_code == 401 and body(response)["error"] == "invalid_token"


def test_token_is_checked_before_the_body(reg):
    response = post(reg, b"not json", token="wrong")
    assert response.status_code == 401


# -- the body -------------------------------------------------------------------------------------

BODY_CASES = [
    (b"client_name=x", {"Content-Type": "application/x-www-form-urlencoded"}, "invalid_request"),
    (b'{"client_name": "x"', {}, "invalid_client_metadata"),
    (b"[]", {}, "invalid_client_metadata"),
    (b'"a string"', {}, "invalid_client_metadata"),
    (b'{"client_name": "a", "client_name": "b", "redirect_uris": ["https://a.example/cb"]}', {},
     "invalid_client_metadata"),
    (b"\xff\xfe", {}, "invalid_client_metadata"),
]


def test_body_must_be_one_json_object(reg):
    for raw, headers, error in BODY_CASES:  # one moto setup for all cases (each is a separate request)
        response = post(reg, raw, headers=headers)
        assert response.status_code == 400, raw
        assert body(response)["error"] == error, raw
        assert response.headers["Content-Type"] == "application/json"


METADATA_CASES = [
    ({"client_name": ""}, "invalid_client_metadata"),
    ({"client_name": None}, "invalid_client_metadata"),
    ({"client_name": "x" * 101}, "invalid_client_metadata"),
    ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
    ({"grant_types": ["implicit"]}, "invalid_client_metadata"),
    ({"grant_types": ["password"]}, "invalid_client_metadata"),
    ({"grant_types": ["refresh_token"]}, "invalid_client_metadata"),
    ({"grant_types": "authorization_code"}, "invalid_client_metadata"),
    ({"response_types": ["token"]}, "invalid_client_metadata"),
    ({"response_types": ["code", "token"]}, "invalid_client_metadata"),
    ({"scope": "read:analysis admin"}, "invalid_client_metadata"),
    ({"scope": "read:analysis  write:analysis"}, "invalid_client_metadata"),
    ({"scope": 42}, "invalid_client_metadata"),
    ({"grant_types": ["client_credentials"], "response_types": [], "token_endpoint_auth_method": "none"},
     "invalid_client_metadata"),
    ({"redirect_uris": []}, "invalid_redirect_uri"),
    ({"redirect_uris": None}, "invalid_client_metadata"),  # missing altogether
    ({"redirect_uris": "https://app.example/cb"}, "invalid_client_metadata"),
    ({"redirect_uris": [f"https://app.example/{i}" for i in range(11)]}, "invalid_redirect_uri"),
]


@pytest.mark.store("dynamo")  # reads the DynamoDB items at rest
def test_invalid_metadata_is_a_spec_shaped_400(aws, reg):
    for change, error in METADATA_CASES:  # one moto setup for all cases (each is a separate request)
        metadata = {**WEB, **change}
        for name in ("redirect_uris", "client_name"):
            if name in change and change[name] is None:
                del metadata[name]  # absent altogether
        response = post(reg, metadata)
        assert response.status_code == 400, (change, response.body)
        result = body(response)
        assert result["error"] == error, change
        assert set(result) <= {"error", "error_description"}
    assert table_dump(aws).count('"kind": "client"') == 0


# -- redirect URI rules (RFC 8252, RFC 9700 §2.1) --------------------------------------------------

ACCEPTED = [
    ("https://app.example/callback", False),
    ("https://app.example:8443/cb?x=1", False),
    ("http://127.0.0.1/cb", False),
    ("http://127.0.0.1:8765/callback", False),
    ("http://[::1]:9000/cb", False),
    ("http://localhost:3000/cb", False),
    ("com.example.app:/oauth2redirect", True),
    ("com.example.app:/oauth2redirect", True),
    # the private-use schemes agents really use (RFC 8252 §7.1 asks for reverse-DNS, they don't)
    ("cursor://anysphere.cursor-retrieval/oauth/user-clipron/callback", True),
    ("vscode://vscode.github-authentication/did-authenticate", True),
    ("myapp:/cb", True),
]
REFUSED = [
    ("http://app.example/callback", False),  # plain http off loopback
    ("http://127.0.0.2.example/cb", False),
    ("http://localhost.evil.example/cb", False),
    ("http://[::2]/cb", False),
    ("https://app.example/cb#fragment", False),
    ("https://app.example/cb#", False),
    ("https://*.example/cb", False),
    ("https://app.example/*", False),
    ("https://user@app.example/cb", False),
    ("https://user:pw@app.example/cb", False),
    ("https://app.example@evil.example/cb", False),
    ("javascript:alert(1)//", True),
    ("data:text/html,hi", True),
    ("//evil.example/cb", False),
    ("/relative/cb", False),
    ("https:///cb", False),
    ("https://app.example/c b", False),
    ("https://app.example/cb\n", False),
    ('https://app.example/"><script>alert(1)</script>', False),  # not URI characters (RFC 3986)
    ("https://app.example/{id}|x^", False),
    ("com.example.app:/cb", False),  # a private-use scheme is for public (native) clients only
    ("JavaScript:alert(1)//", True),  # upper case: a browser runs it all the same
    ("vbscript:msgbox(1)", True),
    ("file:///etc/passwd", True),
    ("about:blank", True),
    ("blob:https://app.example/0f0f", True),
    ("view-source:https://app.example/", True),
    ("ws://app.example/cb", True),
    ("chrome-extension://abcdef/cb", True),
    ("ab:/cb", True),  # too short to be an app's own scheme
    ("cursor:", True),  # nothing after the scheme
    ("com.example.app://host:99/cb", True),
    ("", False),
]


@pytest.mark.parametrize(("uri", "public"), ACCEPTED)
def test_redirect_uri_rule_accepts(uri, public):
    assert registration.validate_redirect_uri(uri, public) == uri


@pytest.mark.parametrize(("uri", "public"), REFUSED)
def test_redirect_uri_rule_refuses(uri, public):
    with pytest.raises(InvalidRedirectUri):
        registration.validate_redirect_uri(uri, public)


def test_register_refuses_bad_redirect_uris(reg):
    for uri in ("http://app.example/cb", "https://app.example/cb#x", "https://*.app.example/cb",
                "https://u:p@app.example/cb", "com.example.app:/cb"):
        response = post(reg, {**WEB, "redirect_uris": ["https://ok.example/cb", uri]})
        assert response.status_code == 400, uri
        assert body(response)["error"] == "invalid_redirect_uri", uri


def test_native_private_use_scheme_is_accepted_over_register(reg):
    metadata = {**WEB, "redirect_uris": ["com.example.app:/cb"], "token_endpoint_auth_method": "none"}
    assert post(reg, metadata).status_code == 201


# -- RFC 7592 management --------------------------------------------------------------------------

@pytest.fixture
def registered(reg):
    return body(post(reg, WEB))


def test_read_returns_the_metadata_and_no_secret(reg, registered):
    response = manage(reg, "get", registered["registration_client_uri"], registered["registration_access_token"])
    assert response.status_code == 200
    result = body(response)
    assert result["client_id"] == registered["client_id"]
    assert result["redirect_uris"] == WEB["redirect_uris"]
    assert "client_secret" not in result and "registration_access_token" not in result


def test_management_needs_this_clients_registration_access_token(reg, registered):
    other = body(post(reg, {**WEB, "client_name": "Other"}))
    path = registered["registration_client_uri"].removeprefix(ISS)
    for token in ("not-the-token", TOKEN, other["registration_access_token"], None):
        for method in ("get", "delete", "put"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            if method == "put":
                headers.update(JSON)
            response = getattr(reg, method)(path, headers=headers, **({"body": b"{}"} if method == "put" else {}))
            assert response.status_code == 401, (token, method)
            assert body(response)["error"] == "invalid_token"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert manage(reg, "get", registered["registration_client_uri"],
                  registered["registration_access_token"]).status_code == 200


def test_unknown_client_is_401_like_a_wrong_token(reg):
    response = manage(reg, "get", f"{ISS}/register/app_nope", "some-token")
    assert response.status_code == 401 and body(response)["error"] == "invalid_token"


def test_update_replaces_metadata_and_forgets_the_cached_client(aws, reg, registered):
    client_id = registered["client_id"]
    assert aws.clients.get(client_id).redirect_uris == WEB["redirect_uris"]  # now cached
    update = {"client_id": client_id, "client_name": "Renamed", "redirect_uris": ["https://new.example/cb"],
              "scope": "read:project", "client_secret": registered["client_secret"]}
    response = manage(reg, "put", registered["registration_client_uri"], registered["registration_access_token"],
                      update)
    assert response.status_code == 200, response.body
    result = body(response)
    assert result["client_name"] == "Renamed" and result["redirect_uris"] == ["https://new.example/cb"]
    assert result["scope"] == "read:project"
    assert aws.clients.get(client_id).redirect_uris == ["https://new.example/cb"]
    # the secret did not change
    assert [s.digest for s in aws.store.get_client(client_id).secrets] == [digest(registered["client_secret"])]


BAD_UPDATES = [
    ({"client_id": "app_other"}, "invalid_request"),
    ({"client_id": None}, "invalid_request"),
    ({"client_secret": "chosen-by-the-client"}, "invalid_request"),
    ({"registration_access_token": "x"}, "invalid_request"),
    ({"registration_client_uri": "https://evil.example"}, "invalid_request"),
    ({"client_id_issued_at": 1}, "invalid_request"),
    ({"client_secret_expires_at": 1}, "invalid_request"),
    ({"token_endpoint_auth_method": "none"}, "invalid_client_metadata"),
    ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
]


def test_bad_updates_are_refused_and_change_nothing(aws, reg, registered):
    for change, error in BAD_UPDATES:
        update = {"client_id": registered["client_id"], **WEB, **change}
        if change.get("client_id", "keep") is None:
            del update["client_id"]
        response = manage(reg, "put", registered["registration_client_uri"],
                          registered["registration_access_token"], update)
        assert response.status_code == 400, change
        assert body(response)["error"] == error, change
    stored = aws.store.get_client(registered["client_id"])
    assert stored.redirect_uris == WEB["redirect_uris"] and stored.auth_method == "client_secret_basic"


def test_delete_removes_the_client_and_revokes_its_grants(aws, reg, registered):
    client_id = registered["client_id"]
    user_id = plain_user(aws, "someone@example.com")
    grant_id, _ = issue_grant(aws, client_id, user_id)
    uri, token = registered["registration_client_uri"], registered["registration_access_token"]
    assert grant_in_force(aws.store, client_id, user_id, grant_id, clock.now()) is not None
    response = manage(reg, "delete", uri, token)
    assert response.status_code == 204
    assert aws.store.get_client(client_id) is None
    assert aws.clients.get(client_id) is None
    assert grant_in_force(aws.store, client_id, user_id, grant_id, clock.now()) is None  # ends with its client
    assert manage(reg, "get", uri, token).status_code == 401


def test_wrong_methods_get_a_json_405(reg):
    for method, path in (("get", "/register"), ("put", "/register"), ("delete", "/register"),
                         ("post", "/register/app_x")):
        response = getattr(reg, method)(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 405, (method, path)
        assert body(response)["error"] == "invalid_request" and response.headers["Allow"]


def test_storage_failure_is_a_json_503_and_registers_nothing(aws, reg, monkeypatch):
    from chalicelib.records import StoreUnavailable

    def unavailable(*args, **kwargs):
        raise StoreUnavailable("ProvisionedThroughputExceededException")

    monkeypatch.setattr(aws.store, "create_client", unavailable)
    response = post(reg, WEB)
    assert response.status_code == 503
    assert body(response)["error"] == "temporarily_unavailable"
    assert "client_secret" not in response.body.decode()
