"""Client ID Metadata Documents: the safe outbound fetch, the document rules, the cache, and /authorize.

The documents are served over https by a server with its own CA (tests/tls_support.py) on loopback,
which the fetcher reaches only because these tests allow loopback (as the local stage does).
"""

from __future__ import annotations

import functools
import socket
import time
from urllib.parse import urlencode

import pytest

from chalicelib import clock
from chalicelib.oauth import cimd
from chalicelib.oauth.cimd import MetadataDocuments
from chalicelib.oauth.standing import grant_in_force
from chalicelib.outbound import Fetched, FetchRefused, OutboundPolicy, allowed_address, fetch_json_document
from chalicelib.settings import load_settings
from tests.authorize_support import CH, add_user, consent_page, signed_in_browser
from tests.tls_support import make_ca, tls_server

pytestmark = pytest.mark.store("memory")

server = pytest.fixture(tls_server)
REDIRECT = "http://127.0.0.1:33418/callback"


def document(url: str, **extra):
    return {"client_id": url, "client_name": "Agent Example", "redirect_uris": [REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "token_endpoint_auth_method": "none", **extra}


def policy(server, **overrides) -> OutboundPolicy:
    return OutboundPolicy(**{"allow_loopback": True, "ca_files": (str(server.ca_file),), "timeout_seconds": 2.0,
                             **overrides})


def refused(url: str, fetch_policy: OutboundPolicy) -> str:
    with pytest.raises(FetchRefused) as caught:
        fetch_json_document(url, fetch_policy)
    return str(caught.value)


# -- the outbound fetch ---------------------------------------------------------------------------

def test_fetches_a_document_over_https_with_the_ca_it_is_told_to_trust(server):
    server.behaviour.document(document(server.url("/client.json")), **{"Cache-Control": "max-age=600"})
    fetched = fetch_json_document(server.url("/client.json"), policy(server))
    assert fetched.status == 200 and fetched.cache_control == "max-age=600"
    assert b'"client_name": "Agent Example"' in fetched.body
    assert server.behaviour.requests == ["/client.json"]


def test_each_named_ca_bundle_is_trusted_not_only_the_first(server, tmp_path):
    """REQUESTS_CA_BUNDLE often names the system bundle already; SSL_CERT_FILE's CA must still count."""
    other_ca, _, _ = make_ca(tmp_path, "Another test CA")
    server.behaviour.document(document(server.url("/client.json")))
    assert fetch_json_document(server.url("/client.json"), policy(server, ca_files=(str(other_ca),
                                                                                    str(server.ca_file)))).status == 200
    settings = load_settings({"AWS_DEFAULT_REGION": "us-east-1", "SSL_CERT_FILE": "/a.pem",
                              "REQUESTS_CA_BUNDLE": "/b.pem"})
    assert settings.outbound_ca_files == ("/a.pem", "/b.pem")


def test_an_untrusted_certificate_is_refused(server):
    reason = refused(server.url("/client.json"), policy(server, ca_files=()))
    assert "certificate" in reason or "TLS" in reason


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.0.0.8", "172.16.3.4", "192.168.1.1", "169.254.169.254",
                                     "fd00:ec2::254", "100.64.0.1", "0.0.0.0", "::ffff:127.0.0.1",
                                     "::ffff:169.254.169.254", "fe80::1", "224.0.0.1", "192.0.2.10"])
def test_private_loopback_link_local_and_metadata_addresses_are_refused(address):
    assert not allowed_address(address, allow_loopback=False)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_are_allowed(address):
    assert allowed_address(address, allow_loopback=False)


def test_loopback_is_refused_outside_the_local_stage_before_any_connection(server):
    reason = refused(server.url("/client.json"), policy(server, allow_loopback=False))
    assert "private, loopback" in reason
    assert server.behaviour.requests == []


def test_a_name_resolving_to_a_private_address_is_refused(server, monkeypatch):
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answers)
    assert "private, loopback" in refused("https://rebind.example/client.json", policy(server, allow_loopback=False))


def test_the_connection_goes_to_the_address_that_was_checked(server, monkeypatch):
    """Resolved once: a second, different DNS answer (rebinding) is never asked for; TLS checks the name."""
    real = socket.getaddrinfo
    calls = []

    def resolve(host, *args, **kwargs):
        calls.append(host)
        if len(calls) > 1:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", server.port))]
        return real("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    url = server.url("/client.json", host="cimd.test")
    server.behaviour.document(document(url))
    assert fetch_json_document(url, policy(server)).status == 200
    assert calls == ["cimd.test"]


def test_http_is_never_fetched(server):
    assert refused(f"http://127.0.0.1:{server.port}/client.json", policy(server)) == "only https URLs are fetched"


def test_a_redirect_is_not_followed(server):
    server.behaviour.status = 302
    server.behaviour.headers = {"Location": server.url("/elsewhere.json")}
    assert "redirects are not followed" in refused(server.url("/client.json"), policy(server))
    assert server.behaviour.requests == ["/client.json"]


@pytest.mark.parametrize("trickle", [False, True])
def test_an_oversized_document_is_refused(server, trickle):
    server.behaviour.body = b'{"client_id": "' + b"x" * 6000 + b'"}'
    if trickle:  # no Content-Length: the cap applies while reading
        server.behaviour.trickle_seconds = 0.00001
    assert "size cap" in refused(server.url("/client.json"), policy(server, timeout_seconds=10))


def test_a_slow_server_is_given_up_on_at_the_timeout(server):
    server.behaviour.delay_seconds = 2
    started = time.monotonic()
    assert "timeout" in refused(server.url("/client.json"), policy(server, timeout_seconds=0.5))
    assert time.monotonic() - started < 1.5


def test_a_trickling_server_cannot_stretch_the_deadline(server):
    """Every byte arrives well within a socket timeout; only one overall deadline stops it."""
    server.behaviour.document(document(server.url("/client.json")))
    server.behaviour.trickle_seconds = 0.05
    started = time.monotonic()
    assert "timeout" in refused(server.url("/client.json"), policy(server, timeout_seconds=0.6))
    assert time.monotonic() - started < 1.5


# -- the document ---------------------------------------------------------------------------------

URL = "https://agent.example/oauth/client.json"


def fetched(body: dict | bytes, content_type: str = "application/json") -> Fetched:
    import json

    return Fetched(200, content_type, "", body if isinstance(body, bytes) else json.dumps(body).encode())


@pytest.mark.parametrize(("url", "valid"), [
    (URL, True),
    ("https://agent.example/client.json?v=2", True),
    ("https://agent.example:8443/c", True),
    ("http://agent.example/client.json", False),  # non-https
    ("https://agent.example", False),  # no path
    ("https://agent.example/", False),
    ("https://agent.example/a/../client.json", False),
    ("https://agent.example/./client.json", False),
    ("https://agent.example/client.json#x", False),
    ("https://user@agent.example/client.json", False),
    ("https://agent.example/client json", False),
    ("https://agent.example:99999/c", False),
    ("https://agent.example/" + "a" * 600, False),
])
def test_the_client_id_url_rules(url, valid):
    assert cimd.valid_metadata_url(url) is valid


def test_a_document_becomes_a_public_unverified_client_with_least_privilege():
    client = cimd.client_from_document(URL, fetched(document(URL)), 100, 400)
    assert client.client_id == URL and client.name == "Agent Example" and client.auth_method == "none"
    assert client.redirect_uris == [REDIRECT] and not client.verified and client.expires_at == 400
    assert client.scopes and not any(s.startswith("write:") for s in client.scopes)


@pytest.mark.parametrize("change", [
    {"client_id": "https://agent.example/oauth/client.json/"},  # not exactly the URL
    {"client_id": "https://AGENT.example/oauth/client.json"},
    {"token_endpoint_auth_method": "client_secret_basic"},
    {"client_secret": "shh"},
    {"redirect_uris": ["javascript:alert(1)"]},
    {"redirect_uris": []},
    {"grant_types": ["client_credentials"]},
    {"scope": "admin:everything"},
])
def test_documents_that_do_not_describe_this_public_client_are_refused(change):
    with pytest.raises(cimd.DocumentRefused):
        cimd.client_from_document(URL, fetched({**document(URL), **change}), 0, 60)


@pytest.mark.parametrize(("body", "content_type"), [
    (b"[1, 2]", "application/json"),
    (b"not json", "application/json"),
    (b'{"client_id": "a", "client_id": "b"}', "application/json"),
    (b"\xff\xfe", "application/json"),
    (b'{"client_id": "' + URL.encode() + b'"}', "text/html"),
])
def test_a_document_must_be_a_json_object_served_as_json(body, content_type):
    with pytest.raises(cimd.DocumentRefused):
        cimd.client_from_document(URL, fetched(body, content_type), 0, 60)


@pytest.mark.parametrize(("header", "seconds"), [
    ("", 300), ("no-store", 300), ("no-cache, max-age=9000", 300), ("max-age=10", 300),
    ("public, max-age=7200", 7200), ("max-age=999999999", 86400), ("max-age=abc", 300),
])
def test_the_cache_lifetime_honours_cache_control_within_bounds(header, seconds):
    assert cimd.cache_seconds(header, 300, 86400) == seconds


# -- through /authorize ---------------------------------------------------------------------------

@pytest.fixture
def documents(aws, server):
    """The app's directory resolving URL client ids against the test server (loopback + its CA)."""
    fetch = functools.partial(fetch_json_document, policy=policy(server))
    aws.clients.documents = MetadataDocuments(aws.store, fetch, aws.settings, clock.now)
    aws.clients._cache.clear()
    return server


def authorize(http, client_id: str, redirect_uri: str = REDIRECT):
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                       "scope": "read:analysis", "state": "s", "code_challenge": CH,
                       "code_challenge_method": "S256"})
    return http.get(f"/authorize?{query}")


def test_a_metadata_document_client_is_fetched_once_then_served_from_dynamodb(aws, http, documents):
    url = documents.url("/client.json")
    documents.behaviour.document(document(url), **{"Cache-Control": "max-age=3600"})
    before = clock.now()
    response = authorize(http, url)
    assert response.status_code == 302 and "/login?request=" in response.headers["Location"]
    assert documents.behaviour.requests == ["/client.json"]
    stored = aws.store.get_metadata_client(url)
    assert stored.redirect_uris == [REDIRECT] and before + 3600 <= stored.expires_at <= clock.now() + 3600

    aws.clients._cache.clear()  # another Lambda instance: DynamoDB answers, not the document's host
    assert authorize(http, url).status_code == 302
    assert documents.behaviour.requests == ["/client.json"]

    clock.travel(3601)  # past the document's max-age: fetched again
    aws.clients._cache.clear()
    assert authorize(http, url).status_code == 302
    assert documents.behaviour.requests == ["/client.json", "/client.json"]


def test_the_documents_redirect_uris_bind_the_request(http, documents):
    url = documents.url("/client.json")
    documents.behaviour.document(document(url))
    response = authorize(http, url, redirect_uri="http://127.0.0.1:33418/other")
    assert response.status_code == 400 and "Location" not in response.headers
    assert authorize(http, url, redirect_uri="http://127.0.0.1:40000/callback").status_code == 302  # RFC 8252 port


@pytest.mark.parametrize("serve", ["mismatch", "redirect", "oversize", "slow"])
def test_an_unusable_document_is_an_error_page_never_a_redirect(aws, http, documents, serve):
    url = documents.url("/client.json")
    documents.behaviour.document(document("https://someone-else.example/client.json"))
    if serve == "redirect":
        documents.behaviour.status, documents.behaviour.headers = 301, {"Location": url + "2"}
    elif serve == "oversize":
        documents.behaviour.document(document(url, client_name="x" * 90, logo_uri="https://x/" + "y" * 6000))
    elif serve == "slow":
        documents.behaviour.document(document(url))
        documents.behaviour.delay_seconds = 3
        aws.clients.documents.fetch = functools.partial(fetch_json_document,
                                                        policy=policy(documents, timeout_seconds=0.3))
    response = authorize(http, url)
    assert response.status_code == 400 and "Location" not in response.headers
    assert "metadata document" in response.body.decode()
    assert aws.store.get_metadata_client(url) is None


def test_a_non_https_url_client_id_is_never_fetched(http, documents):
    url = f"http://127.0.0.1:{documents.port}/client.json"
    response = authorize(http, url)
    assert response.status_code == 400 and "Location" not in response.headers
    assert documents.behaviour.requests == []


def test_the_consent_page_shows_the_documents_host_and_that_it_is_unverified(aws, http, documents):
    url = documents.url("/client.json")
    documents.behaviour.document(document(url))
    add_user(aws.store)
    browser = signed_in_browser(http)
    query = urlencode({"response_type": "code", "client_id": url, "redirect_uri": REDIRECT, "scope": "read:analysis",
                       "state": "s", "code_challenge": CH, "code_challenge_method": "S256"})
    page = consent_page(browser, f"/authorize?{query}").body.decode()
    assert 'id="unverified"' in page
    assert "This application is described by <strong>127.0.0.1</strong>" in page


def test_metadata_advertises_client_id_metadata_documents(http):
    import json

    assert json.loads(http.get("/.well-known/oauth-authorization-server").body)[
        "client_id_metadata_document_supported"] is True


def test_connected_apps_lists_and_revokes_a_metadata_document_client(aws, http):
    """Its id is an https URL: listed (even once its cached document lapsed) and revocable like any app."""
    from tests.developer_support import issue_grant
    from tests.developer_support import sign_in as signed_in_user

    url = "https://agent.example/oauth/client.json"
    aws.store.put_metadata_client(cimd.client_from_document(url, fetched(document(url)), clock.now(),
                                                            clock.now() + 300))
    user = signed_in_user(aws, http, "ada@example.com")
    grant_id, _ = issue_grant(aws, url, user.user_id)
    page = user.get("/account/apps").body.decode()
    assert "Agent Example" in page and f"/account/apps/{cimd.app_ref(url)}/revoke" in page
    clock.travel(301)  # the cached document lapsed: still listed, under its host
    assert "agent.example" in user.get("/account/apps").body.decode()
    assert grant_in_force(aws.store, url, user.user_id, grant_id, clock.now()) is not None  # its grants live on
    response = user.submit("/account/apps", f"/account/apps/{cimd.app_ref(url)}/revoke", {})
    assert response.status_code in (302, 303)
    assert aws.store.get_consent(user.user_id, url) is None
    assert grant_in_force(aws.store, url, user.user_id, grant_id, clock.now()) is None  # ended with the consent


@pytest.mark.parametrize("client_id", ["app_x", URL, "doc.!!!", "doc.aHR0cDovL3g"])
def test_app_refs_round_trip(client_id):
    assert cimd.client_id_from_ref(cimd.app_ref(client_id)) == client_id


def test_a_document_may_name_scopes_of_a_resource_server():
    with pytest.raises(cimd.DocumentRefused):
        cimd.client_from_document(URL, fetched(document(URL, scope="tools:run")), 0, 60)
    client = cimd.client_from_document(URL, fetched(document(URL, scope="tools:run")), 0, 60, {"tools:run"})
    assert client.scopes == ["tools:run"]
