"""Connected apps (/account/apps): what the user authorised, and revoking it (grants and refresh tokens die)."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import urlencode

import pytest

from chalicelib import clock
from chalicelib.crypto.secrets import digest
from chalicelib.oauth.standing import grant_in_force
from chalicelib.records import ClientRecord, ClientSecret
from tests.developer_support import FORM, ISS, issue_grant, sign_in

pytestmark = pytest.mark.store("memory")  # protocol rules only: MemoryStore, no AWS call

SECRET = "connected-secret"


def add_client(aws, client_id: str, name: str) -> None:
    aws.store.create_client(ClientRecord(client_id, name, ["https://app.example/callback"],
                                         ["read:analysis", "write:project"], ["authorization_code", "refresh_token"],
                                         "client_secret_basic", secrets=[ClientSecret(digest(SECRET))],
                                         created_at=clock.now()))


def refresh(http, client_id: str, refresh_token: str):
    auth = "Basic " + base64.b64encode(f"{client_id}:{SECRET}".encode()).decode()
    body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token}).encode()
    return http.post("/token", headers={**FORM, "Authorization": auth}, body=body)


@pytest.fixture
def user(aws, http):
    add_client(aws, "app_one", "Analysis Viewer")
    add_client(aws, "app_two", "Project Sync")
    return sign_in(aws, http, "ada@example.com")


def revoke(user, client_id: str):
    return user.submit("/account/apps", f"/account/apps/{client_id}/revoke", {})


def test_lists_every_authorised_app_with_scopes_and_date(aws, user):
    issue_grant(aws, "app_one", user.user_id, "read:analysis")
    clock.travel(60)
    issue_grant(aws, "app_two", user.user_id, "read:analysis write:project")
    response = user.get("/account/apps")
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    html = response.body.decode()
    assert html.index("Project Sync") < html.index("Analysis Viewer")  # newest first
    assert "write:project" in html and "Create and change your projects" in html
    assert re.search(r"Authorised \d{4}-\d\d-\d\d \d\d:\d\d UTC", html)
    assert html.count("Revoke access</button>") == 2


def test_empty_list(user):
    assert "No application has access" in user.get("/account/apps").body.decode()


def test_only_the_users_own_consents_are_listed(aws, http, user):
    other = sign_in(aws, http, "bob@example.com")
    issue_grant(aws, "app_one", other.user_id)
    assert "Analysis Viewer" not in user.get("/account/apps").body.decode()
    assert "Analysis Viewer" in other.get("/account/apps").body.decode()


def test_revoke_access_removes_consent_and_stops_refresh_tokens(aws, http, user):
    first_grant, first_token = issue_grant(aws, "app_one", user.user_id)
    second_grant, second_token = issue_grant(aws, "app_one", user.user_id)  # e.g. a second device
    _, kept_token = issue_grant(aws, "app_two", user.user_id)
    live = refresh(http, "app_one", first_token)
    assert live.status_code == 200, live.body
    rotated = json.loads(live.body)["refresh_token"]

    response = revoke(user, "app_one")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{ISS}/account/apps?revoked=1"
    assert aws.store.get_consent(user.user_id, "app_one") is None
    for grant_id in (first_grant, second_grant):  # ended by the one write that withdrew the consent
        assert grant_in_force(aws.store, "app_one", user.user_id, grant_id, clock.now()) is None
    for token in (rotated, second_token):
        failed = refresh(http, "app_one", token)
        assert failed.status_code == 400 and json.loads(failed.body)["error"] == "invalid_grant"
    # the other app is untouched
    assert refresh(http, "app_two", kept_token).status_code == 200
    html = user.get("/account/apps?revoked=1").body.decode()
    assert "Access revoked." in html and "Analysis Viewer" not in html and "Project Sync" in html


def test_revoking_what_was_never_granted_is_404(aws, http, user):
    other = sign_in(aws, http, "eve@example.com")
    _, token = issue_grant(aws, "app_one", other.user_id)
    from chalicelib.oauth.sessions import csrf_token

    for client_id in ("app_one", "app_unknown"):
        csrf = csrf_token(user.session_id, f"account:revoke:{client_id}")
        response = user.post(f"/account/apps/{client_id}/revoke", {"csrf_token": csrf})
        assert response.status_code == 404
    assert aws.store.get_consent(other.user_id, "app_one") is not None
    assert refresh(http, "app_one", token).status_code == 200


def test_revoke_csrf_and_origin_failures_are_403(aws, http, user):
    grant_id, _ = issue_grant(aws, "app_one", user.user_id)
    other = sign_in(aws, http, "mallory@example.com")
    issue_grant(aws, "app_one", other.user_id)
    other_token = other.csrf_for("/account/apps", "/account/apps/app_one/revoke")
    own_token = user.csrf_for("/account/apps", "/account/apps/app_one/revoke")
    cases = [
        ({}, {}),
        ({"csrf_token": "forged"}, {}),
        ({"csrf_token": other_token}, {}),
        ({"csrf_token": own_token}, {"Origin": "https://evil.example"}),
        ({"csrf_token": own_token}, {"Sec-Fetch-Site": "cross-site"}),
    ]
    for fields, headers in cases:
        assert user.post("/account/apps/app_one/revoke", fields, headers).status_code == 403
    assert user.get("/account/apps/app_one/revoke").status_code in (403, 404, 405)
    assert aws.store.get_grant("app_one", grant_id).revoked_at is None
    assert aws.store.get_consent(user.user_id, "app_one") is not None


def test_app_name_is_escaped(aws, user):
    add_client(aws, "app_xss", '<script>alert(1)</script>"><img src=x onerror=alert(2)>')
    issue_grant(aws, "app_xss", user.user_id)
    html = user.get("/account/apps").body.decode()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_apps_deleted_by_their_developer_disappear(aws, user):
    issue_grant(aws, "app_one", user.user_id)
    aws.store.delete_client(aws.store.get_client("app_one"))
    assert "Analysis Viewer" not in user.get("/account/apps").body.decode()


def test_a_code_issued_before_revoking_access_cannot_be_exchanged_after(aws, http, user):
    """The redemption is conditioned on the consent still standing: no grant Connected apps cannot list."""
    from chalicelib.crypto.secrets import new_id, new_token
    from chalicelib.records import CodeRecord

    issue_grant(aws, "app_one", user.user_id)
    code, now = new_token(), clock.now()
    grant_id = new_id("gr_")
    generation = aws.store.get_consent(user.user_id, "app_one").generation
    aws.store.put_code(CodeRecord(digest(code), "app_one", "https://app.example/callback", True, user.user_id,
                                  "read:analysis", None, grant_id, now, now + 60, consent_generation=generation))
    assert revoke(user, "app_one").status_code == 303

    auth = "Basic " + base64.b64encode(f"app_one:{SECRET}".encode()).decode()
    body = urlencode({"grant_type": "authorization_code", "code": code,
                      "redirect_uri": "https://app.example/callback"}).encode()
    response = http.post("/token", headers={**FORM, "Authorization": auth}, body=body)
    assert response.status_code == 400 and json.loads(response.body)["error"] == "invalid_grant"
    assert aws.store.get_grant("app_one", grant_id) is None
    assert aws.store.get_consent(user.user_id, "app_one") is None


def test_a_scope_the_developer_withdrew_is_no_longer_listed(aws, user):
    """The app's tokens lose a withdrawn scope at the next exchange or refresh (oauth/standing.current_scope):
    the page shows what the app can still use, not what it once got."""
    issue_grant(aws, "app_two", user.user_id, "read:analysis write:project")
    aws.store.update_client("app_two", lambda client: setattr(client, "scopes", ["read:analysis"]))
    html = user.get("/account/apps").body.decode()
    assert "Project Sync" in html and "read:analysis" in html
    assert "write:project" not in html and "Create and change your projects" not in html
