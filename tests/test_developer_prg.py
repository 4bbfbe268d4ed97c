"""Issue 12, Developer Settings that don't trip people: Post/Redirect/Get for creating an app and
rotating its secret (a reload creates or rotates nothing), the secret shown once from a sealed cookie
(never in the clear on the server or in the cookie), rotation confirmed, the app page's copyable
values, nav and titles that agree."""

from __future__ import annotations

import pytest

from chalicelib.crypto.secrets import digest
from tests.developer_support import ISS, created_credentials, sign_in, table_dump

FIELDS = {"name": "PRG App", "app_type": "web", "redirect_uris": "https://prg.example/cb",
          "scope.read:analysis": "on"}


@pytest.fixture
def dev(aws, http):
    return sign_in(aws, http)


def _reveal_cookie(response) -> str:
    [cookie] = [c for c in _set_cookies(response) if c.startswith("clipron_reveal=")]
    return cookie.split(";")[0]


def _set_cookies(response) -> list[str]:
    values = response.headers.get("Set-Cookie") or []
    return [values] if isinstance(values, str) else values


def _with(dev, cookie: str) -> dict[str, str]:
    return {"Cookie": f"{dev.cookie['Cookie']}; {cookie}"}


def test_create_is_post_redirect_get_and_a_reload_creates_nothing(aws, dev):
    posted = dev.submit("/developer/apps/new", "/developer/apps", FIELDS)
    assert posted.status_code == 303
    issued_path = posted.headers["Location"].removeprefix(ISS)
    client_id = issued_path.split("/")[3]
    assert issued_path == f"/developer/apps/{client_id}/issued"
    cookie = _reveal_cookie(posted)
    assert "HttpOnly" in _set_cookies(posted)[0] and "Max-Age=120" in _set_cookies(posted)[0]

    shown = dev.http.get(issued_path, headers=_with(dev, cookie))
    assert shown.status_code == 200 and "Application created" in shown.body.decode()
    _, secret = created_credentials(shown)
    assert secret and secret not in cookie and secret not in posted.body.decode()  # sealed, not in the clear
    assert secret not in table_dump(aws) and [s.digest for s in aws.store.get_client(client_id).secrets] == [
        digest(secret)]
    assert any(c.startswith("clipron_reveal=;") and "Max-Age=0" in c for c in _set_cookies(shown))

    reload = dev.get(issued_path)  # the browser dropped the cleared cookie: a reload is a GET, nothing more
    assert reload.status_code == 303 and reload.headers["Location"] == f"{ISS}/developer/apps/{client_id}"
    assert secret not in reload.body.decode()
    assert [a.client_id for a in aws.store.list_owned_apps(dev.user_id)] == [client_id]


def test_the_sealed_secret_opens_only_in_its_session_and_for_its_app(aws, http, dev):
    posted = dev.submit("/developer/apps/new", "/developer/apps", FIELDS)
    issued_path = posted.headers["Location"].removeprefix(ISS)
    cookie = _reveal_cookie(posted)
    second_session, _ = aws.sessions.start(dev.user_id)  # the same user in another browser
    same_user_other_session = type(dev)(http, dev.user_id, second_session)
    response = http.get(issued_path, headers=_with(same_user_other_session, cookie))
    assert response.status_code == 303 and "client-secret" not in response.body.decode()
    other_app, _ = created_credentials(dev.create_app("Other"))
    response = http.get(f"/developer/apps/{other_app}/issued", headers=_with(dev, cookie))
    assert response.status_code == 303  # the cookie is bound to the app it was issued for


def test_rotation_needs_confirmation_and_a_reload_rotates_nothing(aws, dev):
    client_id, secret = created_credentials(dev.create_app("Rotating"))
    app_page = f"/developer/apps/{client_id}"
    assert 'name="confirm"' in dev.get(app_page).body.decode().split("/rotate")[1]
    unconfirmed = dev.submit(app_page, f"{app_page}/rotate", {})
    assert unconfirmed.status_code == 400 and "confirm the rotation" in unconfirmed.body.decode()
    assert [s.digest for s in aws.store.get_client(client_id).secrets] == [digest(secret)]

    posted = dev.submit(app_page, f"{app_page}/rotate", {"confirm": "yes"})
    assert posted.status_code == 303
    shown = dev.follow(posted)
    assert "New client secret" in shown.body.decode()
    _, new = created_credentials(shown)
    assert new and new != secret
    after = [s.digest for s in aws.store.get_client(client_id).secrets]
    assert dev.get(f"{app_page}/issued").status_code == 303  # the reload
    assert [s.digest for s in aws.store.get_client(client_id).secrets] == after


def test_app_page_lists_the_issuer_endpoints_and_copyable_values(dev):
    client_id, _ = created_credentials(dev.create_app("Listed", redirect_uris="https://listed.example/cb"))
    body = dev.get(f"/developer/apps/{client_id}").body.decode()
    for value in (client_id, "https://listed.example/cb", ISS, f"{ISS}/authorize", f"{ISS}/token",
                  f"{ISS}/revoke", f"{ISS}/.well-known/oauth-authorization-server", f"{ISS}/.well-known/jwks.json"):
        assert f'<code class="copy">{value}</code>' in body or f'id="client-id">{value}<' in body, value


def test_nav_and_titles_agree(dev):
    body = dev.get("/developer/apps").body.decode()
    assert "<title>Developer Settings · Clipron</title>" in body and "<h1>Developer Settings</h1>" in body
    assert ">Developer Settings</a>" in body and ">Connected apps</a>" in body
    assert '<div class="table-scroll">' in dev.get("/developer/apps").body.decode() or "no applications" in body
