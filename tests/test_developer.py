"""Developer Settings (/developer/apps): create, see, edit, rotate, delete; ownership, CSRF, escaping."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from chalicelib.oauth import clients as client_auth
from chalicelib.oauth.errors import InvalidClient
from chalicelib.oauth.standing import grant_in_force
from chalicelib.records import ClientRecord, ClientSecret
from tests.developer_support import FORM, ISS, created_credentials, issue_grant, sign_in, table_dump
from tests.store_support import list_client_grants, save_client
from tests.token_helpers import CLIENT_LIMITS, freeze_clock
from tests.worlds import reconfigured

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


@pytest.fixture
def dev(aws, http):
    return sign_in(aws, http)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def authenticates(services, client_id: str, secret: str) -> bool:
    services.clients.forget(client_id)
    credentials = client_auth.ClientCredentials(client_id, secret, "client_secret_basic", True)
    try:
        client_auth.authenticate(services.clients, credentials, clock.now(), CLIENT_LIMITS)
    except InvalidClient:
        return False
    return True


def refresh(http, client_id: str, secret: str, refresh_token: str):
    body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token}).encode()
    return http.post("/token", headers={**FORM, **basic(client_id, secret)}, body=body)


# -- signing in ----------------------------------------------------------------------------------

def test_pages_send_a_signed_out_browser_to_login(http, aws):
    for path in ("/developer/apps", "/developer/apps/new", "/developer/apps/app_x", "/account/apps"):
        response = http.get(path)
        assert response.status_code == 303, path
        assert response.headers["Location"] == f"{ISS}/login"
        unknown = http.get(path, headers={"Cookie": "clipron_session=not-a-session"})
        assert unknown.status_code == 303


def test_an_expired_session_is_signed_out(aws, dev):
    assert dev.get("/developer/apps").status_code == 200
    clock.travel(aws.settings.session_seconds)
    assert dev.get("/developer/apps").status_code == 303


def test_the_login_route_the_redirect_names_exists(http, aws):
    assert http.get("/login").status_code == 200


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_posts_without_a_session_are_refused(http, aws):
    body = urlencode({"name": "x", "app_type": "web", "redirect_uris": "https://a.example/cb"}).encode()
    response = http.post("/developer/apps", headers=FORM, body=body)
    assert response.status_code == 403
    assert "client" not in table_dump(aws)


# -- creating ------------------------------------------------------------------------------------

@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_create_web_app_shows_the_secret_once_and_stores_only_its_digest(aws, dev):
    response = dev.create_app("Analysis Dashboard", scopes=("read:analysis", "read:project"))
    assert response.status_code == 200  # the GET after the POST's 303 (Post/Redirect/Get)
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    client_id, secret = created_credentials(response)
    assert secret and len(secret) >= 43

    client = aws.store.get_client(client_id)
    assert client.owner_id == dev.user_id
    assert client.name == "Analysis Dashboard" and client.app_type == "web"
    assert client.redirect_uris == ["https://app.example/callback"]
    assert client.scopes == ["read:analysis", "read:project"]
    assert client.auth_method == "client_secret_basic"
    assert client.grant_types == ["authorization_code", "refresh_token"]
    assert [s.digest for s in client.secrets] == [digest(secret)]
    assert secret not in table_dump(aws)
    assert authenticates(aws, client_id, secret)

    # never shown again: not in the list, the app's page, the edit result or the new-app page
    for path in ("/developer/apps", f"/developer/apps/{client_id}", "/developer/apps/new", "/account/apps"):
        page = dev.get(path)
        assert page.status_code == 200
        assert secret not in page.body.decode()
    listing = dev.get("/developer/apps").body.decode()
    assert client_id in listing and "Analysis Dashboard" in listing


def test_create_native_app_is_public_with_pkce_and_no_secret(aws, dev):
    response = dev.create_app("CLI", app_type="native",
                              redirect_uris="com.example.cli:/callback\r\nhttp://127.0.0.1/callback\n\n")
    assert response.status_code == 200  # the GET after the POST's 303 (Post/Redirect/Get)
    client_id, secret = created_credentials(response)
    assert secret is None
    client = aws.store.get_client(client_id)
    assert client.auth_method == "none" and client.secrets == []
    assert client.redirect_uris == ["com.example.cli:/callback", "http://127.0.0.1/callback"]


def test_create_machine_app_uses_client_credentials(aws, dev):
    response = dev.create_app("Nightly", app_type="machine", redirect_uris="", scopes=("read:analysis",))
    assert response.status_code == 200  # the GET after the POST's 303 (Post/Redirect/Get)
    client_id, secret = created_credentials(response)
    client = aws.store.get_client(client_id)
    assert client.grant_types == ["client_credentials"] and client.redirect_uris == [] and secret


INVALID_APPS = [
    ({"redirect_uris": "http://app.example/cb"}, "must use https"),
    ({"redirect_uris": "https://app.example/cb#x"}, "fragment"),
    ({"redirect_uris": "https://*.example/cb"}, "wildcard"),
    ({"redirect_uris": "https://user:pw@app.example/cb"}, "userinfo"),
    ({"redirect_uris": "com.example.app:/cb"}, "private-use"),  # web apps are confidential
    ({"redirect_uris": ""}, "at least one redirect URI"),
    ({"app_type": "machine"}, "no redirect URIs"),
    ({"app_type": "admin"}, "choose an application type"),
    ({"name": ""}, "client_name is required"),
    ({"scopes": ()}, "choose at least one scope"),
]


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_invalid_app_is_refused_with_the_form_kept(aws, dev):
    for fields, message in INVALID_APPS:
        values = {"name": "Keep Me", "app_type": "web", "redirect_uris": "https://app.example/callback",
                  "scopes": ("read:project",), **fields}
        response = dev.create_app(values["name"], values["app_type"], values["redirect_uris"], values["scopes"])
        assert response.status_code == 400, fields
        html = response.body.decode()
        assert message in html, fields
        assert 'id="form-error"' in html and 'role="alert"' in html
        if values["name"]:
            assert 'value="Keep Me"' in html
    assert '"kind": "client"' not in table_dump(aws)
    assert dev.get("/developer/apps").body.decode().count("/developer/apps/app_") == 0


def test_unknown_scope_checkbox_names_are_ignored(aws, dev):
    fields = {"name": "A", "app_type": "web", "redirect_uris": "https://a.example/cb", "scope.read:analysis": "on",
              "scope.admin": "on"}
    response = dev.follow(dev.submit("/developer/apps/new", "/developer/apps", fields))
    client_id, _ = created_credentials(response)
    assert aws.store.get_client(client_id).scopes == ["read:analysis"]


# -- CSRF and same origin --------------------------------------------------------------------------

def _csrf_cases(dev, other, client_id):
    create = {"name": "Forged", "app_type": "web", "redirect_uris": "https://evil.example/cb",
              "scope.read:analysis": "on"}
    own_token = dev.csrf_for("/developer/apps/new", "/developer/apps")
    other_token = other.csrf_for("/developer/apps/new", "/developer/apps")
    rotate_token = dev.csrf_for(f"/developer/apps/{client_id}", f"/developer/apps/{client_id}/rotate")
    return [
        ("/developer/apps", create, {}),
        ("/developer/apps", {**create, "csrf_token": "forged"}, {}),
        ("/developer/apps", {**create, "csrf_token": other_token}, {}),  # another session's token
        ("/developer/apps", {**create, "csrf_token": own_token}, {"Origin": "https://evil.example"}),
        ("/developer/apps", {**create, "csrf_token": own_token}, {"Sec-Fetch-Site": "cross-site"}),
        (f"/developer/apps/{client_id}/delete", {"confirm": "yes", "csrf_token": rotate_token}, {}),  # other action
        (f"/developer/apps/{client_id}/rotate", {"csrf_token": own_token}, {}),
        (f"/developer/apps/{client_id}", {"name": "Hijacked", "redirect_uris": "https://evil.example/cb",
                                          "scope.read:analysis": "on", "csrf_token": rotate_token}, {}),
    ]


def test_csrf_failures_are_403_and_change_nothing(aws, http, dev):
    client_id, secret = created_credentials(dev.create_app("Real"))
    other = sign_in(aws, http, "other@example.com")
    before = aws.store.get_client(client_id)
    for path, fields, headers in _csrf_cases(dev, other, client_id):
        response = dev.post(path, fields, headers)
        assert response.status_code == 403, (path, fields, headers)
        assert "Request refused" in response.body.decode()
    assert aws.store.get_client(client_id) == before
    assert [a.client_id for a in aws.store.list_owned_apps(dev.user_id)] == [client_id]
    assert authenticates(aws, client_id, secret)


def test_revoke_access_needs_csrf_too(aws, dev):
    response = dev.post("/account/apps/app_x/revoke", {"csrf_token": "nope"})
    assert response.status_code == 403


# -- ownership -------------------------------------------------------------------------------------

def test_another_users_app_is_404_everywhere(aws, http, dev):
    client_id, secret = created_credentials(dev.create_app("Mine"))
    mallory = sign_in(aws, http, "mallory@example.com")
    assert mallory.get(f"/developer/apps/{client_id}").status_code == 404
    assert client_id not in mallory.get("/developer/apps").body.decode()
    # Mallory can mint a CSRF token for her own session and any action; ownership still stops her
    from chalicelib.oauth.sessions import csrf_token

    for action, fields in [
        ("", {"name": "Pwned", "redirect_uris": "https://evil.example/cb", "scope.read:analysis": "on"}),
        ("/rotate", {}),
        ("/delete", {"confirm": "yes"}),
    ]:
        token = csrf_token(mallory.session_id, f"developer:{action.strip('/') or 'update'}:{client_id}")
        response = mallory.post(f"/developer/apps/{client_id}{action}", {**fields, "csrf_token": token})
        assert response.status_code == 404, action
        assert secret not in response.body.decode()
    client = aws.store.get_client(client_id)
    assert client.name == "Mine" and client.redirect_uris == ["https://app.example/callback"]
    assert authenticates(aws, client_id, secret)


def test_operator_clients_without_owner_and_unknown_ids_are_404(aws, dev):
    aws.store.create_client(ClientRecord("ops-client", "Ops", ["https://ops.example/cb"], ["read:analysis"],
                                         ["authorization_code"], "client_secret_basic",
                                         secrets=[ClientSecret(digest("s"))]))
    assert dev.get("/developer/apps/ops-client").status_code == 404
    assert dev.get("/developer/apps/app_unknown").status_code == 404
    assert dev.get("/developer/apps/" + "x" * 300).status_code == 404


# -- escaping ------------------------------------------------------------------------------------

def test_app_names_are_escaped_on_every_page(aws, dev):
    response = dev.create_app(XSS[:100])
    assert response.status_code == 200  # the GET after the POST's 303 (Post/Redirect/Get)
    client_id, _ = created_credentials(response)
    issue_grant(aws, client_id, dev.user_id)
    pages = [response, dev.get("/developer/apps"), dev.get(f"/developer/apps/{client_id}"), dev.get("/account/apps")]
    for page in pages:
        html = page.body.decode()
        assert "<script>alert(1)" not in html and "<img src=x" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_error_messages_echoing_input_are_escaped(aws, dev):
    response = dev.create_app("x", redirect_uris='https://a.example/"><script>alert(1)</script>')
    assert response.status_code == 400
    assert "<script>alert(1)" not in response.body.decode()


# -- editing -------------------------------------------------------------------------------------

def test_edit_changes_redirect_uris_and_scopes_and_drops_the_cached_client(aws, dev):
    client_id, secret = created_credentials(dev.create_app("Editable"))
    assert aws.clients.get(client_id).scopes == ["read:analysis"]  # cached now
    page = f"/developer/apps/{client_id}"
    response = dev.submit(page, page, {"name": "Edited", "redirect_uris": "https://new.example/cb\nhttp://localhost:9/cb",
                                       "scope.write:project": "on", "scope.read:project": "on"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{ISS}/developer/apps/{client_id}?saved=1"
    cached = aws.clients.get(client_id)
    assert cached.name == "Edited"
    assert cached.redirect_uris == ["https://new.example/cb", "http://localhost:9/cb"]
    assert cached.scopes == ["read:project", "write:project"]
    assert cached.auth_method == "client_secret_basic" and [s.digest for s in cached.secrets] == [digest(secret)]
    shown = dev.get(response.headers["Location"].removeprefix(ISS)).body.decode()
    assert "Saved." in shown and "https://new.example/cb" in shown


def test_invalid_edit_changes_nothing(aws, dev):
    client_id, _ = created_credentials(dev.create_app("Stable"))
    page = f"/developer/apps/{client_id}"
    for fields in ({"name": "S", "redirect_uris": "http://evil.example/cb", "scope.read:analysis": "on"},
                   {"name": "S", "redirect_uris": "https://ok.example/cb"}):
        response = dev.submit(page, page, fields)
        assert response.status_code == 400
        assert 'id="form-error"' in response.body.decode()
    client = aws.store.get_client(client_id)
    assert client.name == "Stable" and client.redirect_uris == ["https://app.example/callback"]


# -- rotating the secret -------------------------------------------------------------------------

def _rotate(dev, client_id):
    page = f"/developer/apps/{client_id}"
    return dev.follow(dev.submit(page, f"{page}/rotate", {"confirm": "yes"}))


@pytest.mark.store("dynamo")  # reads DynamoDB's items, or counts or fails its calls
def test_rotation_without_overlap_stops_the_old_secret_at_once(aws, dev):
    client_id, old = created_credentials(dev.create_app("Rotating"))
    response = _rotate(dev, client_id)
    assert response.status_code == 200
    same_id, new = created_credentials(response)
    assert same_id == client_id and new and new != old
    assert "no longer works" in response.body.decode()
    assert authenticates(aws, client_id, new)
    assert not authenticates(aws, client_id, old)
    assert new not in table_dump(aws)
    assert new not in dev.get(f"/developer/apps/{client_id}").body.decode()


def test_rotation_overlap_keeps_the_old_secret_for_the_window_only(aws, dev, monkeypatch):
    freeze_clock(monkeypatch)  # the window is checked to the second: a slow second must not close it early
    aws = reconfigured(aws, secret_rotation_overlap_seconds=300)
    client_id, old = created_credentials(dev.create_app("Overlapping"))
    _, new = created_credentials(_rotate(dev, client_id))
    assert authenticates(aws, client_id, new) and authenticates(aws, client_id, old)
    clock.travel(299)
    assert authenticates(aws, client_id, old)
    clock.travel(1)
    assert not authenticates(aws, client_id, old)
    assert authenticates(aws, client_id, new)


def test_rotating_twice_keeps_at_most_one_previous_secret(aws, dev):
    aws = reconfigured(aws, secret_rotation_overlap_seconds=300)
    client_id, first = created_credentials(dev.create_app("Twice"))
    _, second = created_credentials(_rotate(dev, client_id))
    _, third = created_credentials(_rotate(dev, client_id))
    assert authenticates(aws, client_id, third) and authenticates(aws, client_id, second)
    assert not authenticates(aws, client_id, first)


def test_public_apps_have_no_secret_to_rotate(aws, dev):
    client_id, _ = created_credentials(dev.create_app("SPA", app_type="native", redirect_uris="http://127.0.0.1/cb"))
    page = dev.get(f"/developer/apps/{client_id}").body.decode()
    assert "/rotate" not in page
    token = dev.csrf_for(f"/developer/apps/{client_id}", f"/developer/apps/{client_id}")
    from chalicelib.oauth.sessions import csrf_token

    assert token  # the page works; a forged rotate for a public app is refused cleanly
    response = dev.post(f"/developer/apps/{client_id}/rotate",
                        {"confirm": "yes", "csrf_token": csrf_token(dev.session_id, f"developer:rotate:{client_id}")})
    assert response.status_code == 400


# -- deleting ------------------------------------------------------------------------------------

def test_delete_needs_the_confirmation_box(aws, dev):
    client_id, _ = created_credentials(dev.create_app("Careful"))
    page = f"/developer/apps/{client_id}"
    response = dev.submit(page, f"{page}/delete", {})
    assert response.status_code == 400
    assert aws.store.get_client(client_id) is not None


def test_delete_revokes_every_grant_so_refresh_and_introspection_fail(aws, http, dev):
    client_id, secret = created_credentials(dev.create_app("Doomed", scopes=("read:analysis",)))
    alice = sign_in(aws, http, "alice@example.com")
    _, refresh_token = issue_grant(aws, client_id, alice.user_id)
    _, other_refresh = issue_grant(aws, client_id, dev.user_id)
    # a resource server that may introspect every client's tokens
    aws.store.create_client(ClientRecord("rs", "RS", [], ["read:analysis"], ["client_credentials"],
                                         "client_secret_basic", secrets=[ClientSecret(digest("rs-secret"))],
                                         resource_server=True))

    live = refresh(http, client_id, secret, refresh_token)
    assert live.status_code == 200, live.body
    tokens = json.loads(live.body)

    def introspect(token):
        body = urlencode({"token": token}).encode()
        return json.loads(http.post("/introspect", headers={**FORM, **basic("rs", "rs-secret")}, body=body).body)

    assert introspect(tokens["access_token"])["active"] is True

    page = f"/developer/apps/{client_id}"
    response = dev.submit(page, f"{page}/delete", {"confirm": "yes"})
    assert response.status_code == 303 and response.headers["Location"] == f"{ISS}/developer/apps"

    assert aws.store.get_client(client_id) is None
    assert aws.clients.get(client_id) is None
    assert aws.store.list_owned_apps(dev.user_id) == []
    for grant in list_client_grants(aws.store, client_id):  # every grant ended with its client, in one write
        assert grant_in_force(aws.store, client_id, grant.user_id, grant.grant_id, clock.now()) is None
    for token in (tokens["refresh_token"], other_refresh):
        failed = refresh(http, client_id, secret, token)
        assert failed.status_code in (400, 401)
        assert json.loads(failed.body)["error"] in ("invalid_client", "invalid_grant")
    assert introspect(tokens["access_token"]) == {"active": False}
    assert introspect(tokens["refresh_token"]) == {"active": False}
    assert dev.get(page).status_code == 404
    assert "Doomed" not in alice.get("/account/apps").body.decode()


def test_pages_are_keyboard_usable_and_labelled(dev):
    html = dev.get("/developer/apps/new").body.decode()
    for field_id in ("name", "redirect_uris", "type-web", "type-native", "type-machine", "scope-1"):
        assert f'id="{field_id}"' in html and f'for="{field_id}"' in html
    assert "tabindex=\"-1\"" not in html and "<script" not in html


def test_storage_failure_is_an_error_page_not_a_trace(aws, dev, monkeypatch):
    from chalicelib.records import StoreUnavailable

    def unavailable(*args, **kwargs):
        raise StoreUnavailable("timeout")

    monkeypatch.setattr(aws.store, "list_owned_apps", unavailable)
    response = dev.get("/developer/apps")
    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Traceback" not in response.body.decode()


def test_pages_offer_sign_out_with_the_logout_csrf_token(aws, dev):
    from chalicelib.oauth.sessions import csrf_token

    token = dev.csrf_for("/developer/apps", "/logout")
    assert token == csrf_token(dev.session_id, "logout")
    response = dev.post("/logout", {"csrf_token": token})
    assert response.status_code == 200
    assert dev.get("/developer/apps").status_code == 303  # the session is gone


def test_edit_keeps_the_auth_method_and_grants_of_an_app_registered_elsewhere(aws, dev):
    aws.store.create_client(ClientRecord("cli-app", "CLI made", ["https://cli.example/cb"], ["read:analysis"],
                                         ["authorization_code"], "client_secret_post", owner_id=dev.user_id,
                                         secrets=[ClientSecret(digest("s"))]))
    page = "/developer/apps/cli-app"
    response = dev.submit(page, page, {"name": "CLI made", "redirect_uris": "https://cli.example/cb2",
                                       "scope.read:project": "on"})
    assert response.status_code == 303
    client = aws.store.get_client("cli-app")
    assert client.auth_method == "client_secret_post" and client.grant_types == ["authorization_code"]
    assert client.redirect_uris == ["https://cli.example/cb2"] and client.scopes == ["read:project"]


def test_rotation_is_enforced_at_the_token_endpoint(aws, http, dev):
    client_id, old = created_credentials(dev.create_app("Job", app_type="machine", redirect_uris=""))
    body = urlencode({"grant_type": "client_credentials", "scope": "read:analysis"}).encode()

    def token(secret):
        return http.post("/token", headers={**FORM, **basic(client_id, secret)}, body=body)

    assert token(old).status_code == 200
    _, new = created_credentials(_rotate(dev, client_id))
    assert token(new).status_code == 200
    refused = token(old)
    assert refused.status_code == 401 and json.loads(refused.body)["error"] == "invalid_client"


@pytest.mark.store("dynamo")  # a race on DynamoDB's conditional writes
def test_an_edit_racing_a_rotation_loses_neither(aws, dev, monkeypatch):
    """The edit read the client, then a rotation landed before its write: the edit is re-applied on top."""
    from chalicelib.oauth import registration

    client_id, old = created_credentials(dev.create_app("Racy"))
    original = aws.store.update_client
    rotated: list[str] = []

    def racing_update(cid, change, attempts=3):
        def change_after_a_concurrent_rotation(client):
            if not rotated:
                def rotate(fresh):
                    rotated.append(registration.rotate_secret(fresh, clock.now(), 0))

                original(cid, rotate)  # another request rotates the secret right now
            change(client)

        return original(cid, change_after_a_concurrent_rotation, attempts)

    monkeypatch.setattr(aws.store, "update_client", racing_update)
    page = f"/developer/apps/{client_id}"
    response = dev.submit(page, page, {"name": "Edited", "redirect_uris": "https://app.example/callback",
                                       "scope.read:analysis": "on"})
    assert response.status_code == 303
    client = aws.store.get_client(client_id)
    assert client.name == "Edited"
    assert [s.digest for s in client.secrets] == [digest(rotated[0])]  # the rotation survived
    assert authenticates(aws, client_id, rotated[0]) and not authenticates(aws, client_id, old)


def test_update_client_gives_up_when_the_client_never_settles(aws, dev, monkeypatch):
    from chalicelib.records import ConditionFailed

    client_id, _ = created_credentials(dev.create_app("Busy"))
    store = aws.store

    def change(client):
        other = store.get_client(client_id)
        other.name = other.name + "!"
        save_client(store, other)  # someone else writes first, every time
        client.name = "mine"

    with pytest.raises(ConditionFailed):
        store.update_client(client_id, change)
    assert store.get_client(client_id).name == "Busy!!!"
    assert store.update_client("app_missing", change) is None


def test_a_client_that_never_settles_gives_a_clear_page_not_a_500(aws, dev, monkeypatch):
    from chalicelib.records import ConditionFailed

    client_id, secret = created_credentials(dev.create_app("Contended"))

    def always_lost(*args, **kwargs):
        raise ConditionFailed("lost")

    monkeypatch.setattr(aws.store, "update_client", always_lost)
    response = _rotate(dev, client_id)
    assert response.status_code == 400
    assert "changed while saving" in response.body.decode()
    assert authenticates(aws, client_id, secret)
