"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, MCP 2025-11-25+).

A client whose client_id is an https URL with a path needs no registration: the document at that
URL is its metadata. We fetch it safely (chalicelib.outbound), accept it only when it is a JSON
object whose client_id equals the URL exactly and that describes a public client, validate it with
the same rules as any registration (so its redirect_uris bind the request exactly like a registered
client's, and naming no scope gets no write scope), and cache the validated client in DynamoDB for
a lifetime that honours Cache-Control within the operator's bounds.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Callable, Collection, Protocol
from urllib.parse import urlsplit

from chalicelib import strict_json
from chalicelib.oauth import registration
from chalicelib.oauth.errors import OAuthError
from chalicelib.outbound import Fetched, FetchRefused
from chalicelib.records import ClientRecord, is_metadata_client_id
from chalicelib.settings import Settings

log = logging.getLogger("clipron.oauth")

MAX_METADATA_URL = 512
_REF_PREFIX = "doc."
_URL_CHARACTERS = re.compile(r"^[\x21-\x7e]+$")
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?([0-9]{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_JSON_TYPE = re.compile(r"^application/([a-z0-9.+-]+\+)?json$")
# a client secret in a public document is no secret; these methods need one (draft §4.1)
_SECRET_FIELDS = ("client_secret", "client_secret_expires_at")
# the registration metadata a document may carry; everything else (logo_uri, client_uri …) is ignored
_PASSED_THROUGH = ("redirect_uris", "grant_types", "response_types", "scope", "application_type")


class DocumentRefused(Exception):
    """The fetched document is not a usable client description (a fixed reason, for logs)."""


class MetadataClientStore(Protocol):
    def get_metadata_client(self, client_id: str) -> ClientRecord | None: ...
    def put_metadata_client(self, client: ClientRecord) -> None: ...


def is_metadata_url(client_id: str) -> bool:
    """The shape that says "fetch me" (registered client ids never start like this)."""
    return is_metadata_client_id(client_id)


def valid_metadata_url(url: str) -> bool:
    """Draft §3: https, a host, a path other than "/", no dot segments, no fragment, no userinfo."""
    if len(url) > MAX_METADATA_URL or not _URL_CHARACTERS.match(url) or "#" in url or "\\" in url:
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return False
    segments = parts.path.split("/")
    return (
        parts.scheme == "https"
        and bool(parts.hostname)
        and "@" not in parts.netloc
        and parts.path not in ("", "/")
        and not any(segment in (".", "..") for segment in segments)
    )


def document_host(client_id: str) -> str | None:
    """The host that published a metadata-document client's description (shown on the consent page)."""
    return urlsplit(client_id).hostname if is_metadata_url(client_id) else None


def app_ref(client_id: str) -> str:
    """A client id fit for one URL path segment (Connected apps' revoke URL): a metadata URL is encoded."""
    if not is_metadata_url(client_id):
        return client_id
    return _REF_PREFIX + base64.urlsafe_b64encode(client_id.encode()).decode().rstrip("=")


def client_id_from_ref(ref: str) -> str:
    if ref.startswith(_REF_PREFIX):
        try:
            decoded = base64.urlsafe_b64decode(ref[len(_REF_PREFIX):] + "=" * (-len(ref) % 4)).decode()
        except (ValueError, UnicodeDecodeError):
            return ref
        if is_metadata_url(decoded):
            return decoded
    return ref


def cache_seconds(cache_control: str, low: int, high: int) -> int:
    """How long to keep a document: its max-age within [low, high]; `low` when it asks for no caching
    (a flow's /authorize, /consent and /token must not refetch it three times) or says nothing."""
    directives = cache_control.lower()
    if "no-store" in directives or "no-cache" in directives:
        return low
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return low
    return max(low, min(high, int(match.group(1))))


def client_from_document(url: str, fetched: Fetched, now: int, expires_at: int,
                         extra_scopes: Collection[str] = ()) -> ClientRecord:
    """The client a fetched document describes; DocumentRefused when it does not describe one for `url`."""
    content_type = fetched.content_type.split(";")[0].strip().lower()
    if not _JSON_TYPE.match(content_type):
        raise DocumentRefused("the document is not served as JSON")
    try:
        document = strict_json.loads(fetched.body)
    except ValueError:
        raise DocumentRefused("the document is not valid JSON (or names a member twice)") from None
    if not isinstance(document, dict):
        raise DocumentRefused("the document is not a JSON object")
    if document.get("client_id") != url:  # exact string comparison (draft §4.1)
        raise DocumentRefused("the document's client_id is not its URL")
    if any(name in document for name in _SECRET_FIELDS):
        raise DocumentRefused("the document carries a client secret")
    if document.get("token_endpoint_auth_method", "none") != "none":
        raise DocumentRefused("only public clients (token_endpoint_auth_method none) are supported")
    name = document.get("client_name", urlsplit(url).hostname)
    metadata = {"client_name": name, "token_endpoint_auth_method": "none",
                **{key: document[key] for key in _PASSED_THROUGH if key in document}}
    try:
        accepted = registration.validate_metadata(metadata, extra_scopes=extra_scopes)
    except OAuthError:
        raise DocumentRefused("the document's metadata is not acceptable") from None
    if "authorization_code" not in accepted["grant_types"]:
        raise DocumentRefused("the document does not use the authorization code grant")
    return ClientRecord(
        client_id=url,
        name=accepted["client_name"],
        redirect_uris=accepted["redirect_uris"],
        scopes=accepted["scope"].split(),
        grant_types=accepted["grant_types"],
        auth_method="none",
        app_type=accepted["app_type"],
        created_at=now,
        verified=False,
        expires_at=expires_at,
    )


class MetadataDocuments:
    """Resolve a URL client_id: the cached client while it lasts, else fetch, validate and cache."""

    def __init__(
        self,
        store: MetadataClientStore,
        fetch: Callable[[str], Fetched],
        settings: Settings,
        clock: Callable[[], int],
        resource_scopes: Callable[[], Collection[str]] = tuple,
    ) -> None:
        self.store = store
        self.fetch = fetch
        self.clock = clock
        self.min_cache_seconds = settings.metadata_document_min_cache_seconds
        self.max_cache_seconds = settings.metadata_document_max_cache_seconds
        self.resource_scopes = resource_scopes  # scopes the operator's resource servers accept

    def resolve(self, url: str) -> ClientRecord | None:
        """The client, or None when the URL or its document is unusable (the reason goes to the log only)."""
        if not valid_metadata_url(url):
            return None
        cached = self.store.get_metadata_client(url)
        if cached is not None:
            return cached
        now = self.clock()
        try:
            fetched = self.fetch(url)
            lifetime = cache_seconds(fetched.cache_control, self.min_cache_seconds, self.max_cache_seconds)
            client = client_from_document(url, fetched, now, now + lifetime, self.resource_scopes())
        except (FetchRefused, DocumentRefused) as refused:
            log.warning("client metadata document refused: %s", refused)
            return None
        self.store.put_metadata_client(client)
        return client
