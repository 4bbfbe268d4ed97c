"""Client registration rules, shared by the operator CLI, RFC 7591 /register and Developer Settings."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Collection
from urllib.parse import urlsplit

from chalicelib.crypto.secrets import digest, new_id, new_token
from chalicelib.oauth import scopes as scope_rules
from chalicelib.oauth.client_display import checked_name
from chalicelib.oauth.errors import InvalidClientMetadata, InvalidRedirectUri, OAuthError
from chalicelib.records import AUTH_METHODS, REGISTRABLE_GRANT_TYPES, ClientRecord, ClientSecret

APP_TYPES = {
    # type: (auth method, grant types)
    "web": ("client_secret_basic", ["authorization_code", "refresh_token"]),
    "native": ("none", ["authorization_code", "refresh_token"]),
    "machine": ("client_secret_basic", ["client_credentials"]),
}
MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000
APPLICATION_TYPES = ("web", "native")  # OIDC Registration application_type (MCP SEP-837)
# a private-use URI scheme (RFC 8252 §7.1): reverse-DNS ones (com.example.app:/cb) and the short ones
# agents really use (cursor://, vscode://); lower case, at least three characters
_PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]{2,63}$")
# schemes a browser or the OS treats as content, script, files or other protocols: never a redirect target
_FORBIDDEN_SCHEMES = frozenset({
    "javascript", "vbscript", "data", "file", "blob", "filesystem", "about", "view-source", "jar", "ftp", "ftps",
    "ws", "wss", "mailto", "tel", "sms", "urn", "chrome", "chrome-extension", "moz-extension", "resource",
    "intent", "content", "ms-settings", "smb", "ldap", "gopher", "ssh", "telnet", "http", "https",
})


@dataclass(frozen=True)
class RegisteredClient:
    client: ClientRecord
    client_secret: str | None  # shown once; only its digest is stored


def validate_redirect_uri(uri: str, public_client: bool) -> str:
    """https; http on loopback; a private-use scheme for native public clients. No fragment, userinfo, wildcard."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_LENGTH or uri != uri.strip():
        raise InvalidRedirectUri("a redirect URI must be a non-empty absolute URI")
    # RFC 3986 has no place for these unencoded (quotes and angle brackets would also carry markup)
    if any(ch in uri for ch in '*#\\ \t\r\n"<>{}|^`') or any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in uri):
        raise InvalidRedirectUri("a redirect URI has a fragment, a wildcard or invalid characters")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise InvalidRedirectUri("a redirect URI is malformed") from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidRedirectUri("a redirect URI carries userinfo")
    if parts.scheme == "https":
        if not parts.hostname:
            raise InvalidRedirectUri("a redirect URI has no host")
        return uri
    if parts.scheme == "http":
        host = parts.hostname or ""
        if host == "localhost" or _is_loopback_ip(host):
            return uri
        raise InvalidRedirectUri("a redirect URI must use https (http only on loopback)")
    if public_client and is_private_use_scheme(uri) and port is None:
        return uri
    raise InvalidRedirectUri("a redirect URI must use https, loopback http or a private-use scheme")


def is_private_use_scheme(uri: str) -> bool:
    """A native app's own scheme (RFC 8252 §7.1), never one that runs script or opens content or files.

    The raw scheme must already be lower case: urlsplit would lower `JavaScript:` into something that
    passes a deny-list check while the browser still runs it."""
    scheme, colon, rest = uri.partition(":")
    return bool(colon and rest and _PRIVATE_SCHEME.match(scheme) and scheme not in _FORBIDDEN_SCHEMES)


def is_loopback_uri(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme == "http" and (parts.hostname == "localhost" or _is_loopback_ip(parts.hostname or ""))


def _check_application_type(metadata: dict[str, Any], redirect_uris: list[str]) -> None:
    """OIDC Registration §2: a native app redirects to loopback or its own scheme; a web app to https.
    When application_type is absent nothing more is required than each URI's own rules."""
    if "application_type" not in metadata:
        return
    kind = metadata["application_type"]
    if kind not in APPLICATION_TYPES:
        raise InvalidClientMetadata("application_type must be web or native")
    for uri in redirect_uris:
        native_uri = is_loopback_uri(uri) or is_private_use_scheme(uri)
        if kind == "native" and not native_uri:
            raise InvalidRedirectUri("a native application redirects to loopback http or a private-use scheme")
        if kind == "web" and is_private_use_scheme(uri):
            raise InvalidRedirectUri("a web application redirects to https")


def default_scopes(uses_code: bool = True) -> list[str]:
    """What a registration that names no scope may ask for: every read scope and, for an app that signs
    users in (authorization_code), the OpenID Connect scopes; never a write scope."""
    catalogue = scope_rules.CATALOGUE if uses_code else scope_rules.API_SCOPES
    return sorted(s for s in catalogue if not s.startswith("write:"))


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _string_list(metadata: dict[str, Any], name: str, default: list[str] | None = None) -> list[str]:
    value = metadata.get(name, default)
    if value is None:
        raise InvalidClientMetadata("redirect_uris is required")  # the only list without a default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidClientMetadata("grant_types, response_types and redirect_uris must be lists of strings")
    return value


def validate_metadata(metadata: dict[str, Any], verified: bool = False, *,
                      extra_scopes: Collection[str] = ()) -> dict[str, Any]:
    """RFC 7591 client metadata checked and normalised; InvalidRedirectUri / InvalidClientMetadata otherwise.

    `verified`: an operator registers it (only then may the name mention Clipron). A scope is known
    when it is in the catalogue or in `extra_scopes` (those the operator's resource servers accept:
    an agent registers for the MCP server it connects to)."""
    name = checked_name(metadata.get("client_name"), verified)
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise InvalidClientMetadata(
            "token_endpoint_auth_method must be one of client_secret_basic, client_secret_post, none")
    grant_types = _string_list(metadata, "grant_types", ["authorization_code", "refresh_token"])
    unknown = [g for g in grant_types if g not in REGISTRABLE_GRANT_TYPES]
    if unknown:
        raise InvalidClientMetadata("grant_types holds an unsupported grant type")
    if "client_credentials" in grant_types and method == "none":
        raise InvalidClientMetadata("client_credentials needs a confidential client")
    if "refresh_token" in grant_types and "authorization_code" not in grant_types:
        raise InvalidClientMetadata("refresh_token needs authorization_code")
    uses_code = "authorization_code" in grant_types
    response_types = _string_list(metadata, "response_types", ["code"] if uses_code else [])
    if response_types != (["code"] if uses_code else []):
        raise InvalidClientMetadata("response_types must be [\"code\"] with authorization_code, empty otherwise")
    redirect_uris = _string_list(metadata, "redirect_uris", [] if not uses_code else None)
    if uses_code and not redirect_uris:
        raise InvalidRedirectUri("at least one redirect URI is required for authorization_code")
    if len(redirect_uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUri(f"at most {MAX_REDIRECT_URIS} redirect URIs")
    redirect_uris = [validate_redirect_uri(uri, method == "none") for uri in dict.fromkeys(redirect_uris)]
    _check_application_type(metadata, redirect_uris)
    if "scope" in metadata and not isinstance(metadata["scope"], str):
        raise InvalidClientMetadata("scope must be a string of space-separated scopes")
    try:
        requested = scope_rules.parse_scope(metadata.get("scope")) if "scope" in metadata else None
    except OAuthError:
        raise InvalidClientMetadata("scope is malformed") from None
    client_scopes = requested if requested is not None else default_scopes(uses_code)  # least privilege
    unknown_scopes = [s for s in client_scopes if s not in scope_rules.CATALOGUE and s not in extra_scopes]
    if unknown_scopes:
        raise InvalidClientMetadata("scope holds an unknown scope")
    if not uses_code and any(s in scope_rules.IDENTITY_SCOPES for s in client_scopes):
        raise InvalidClientMetadata("the OpenID Connect scopes need the authorization_code grant")
    post_logout_uris = _string_list(metadata, "post_logout_redirect_uris", [])
    if len(post_logout_uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUri(f"at most {MAX_REDIRECT_URIS} post-logout redirect URIs")
    if post_logout_uris and not uses_code:
        raise InvalidClientMetadata("post_logout_redirect_uris need the authorization_code grant")
    post_logout_uris = [validate_redirect_uri(uri, method == "none") for uri in dict.fromkeys(post_logout_uris)]
    app_type = "machine" if not uses_code else ("native" if method == "none" else "web")
    return {
        "client_name": name,
        "token_endpoint_auth_method": method,
        "grant_types": grant_types,
        "response_types": response_types,
        "redirect_uris": redirect_uris,
        "scope": scope_rules.format_scope(client_scopes),
        "app_type": app_type,
        "post_logout_redirect_uris": post_logout_uris,
    }


def build_client(
    metadata: dict[str, Any], owner_id: str | None, now: int, *, verified: bool = False,
    extra_scopes: Collection[str] = (),
) -> RegisteredClient:
    """A new client from validated metadata, with a fresh secret for confidential clients.

    `verified`: the operator registers it (CLI); every self-registered app is unverified."""
    accepted = validate_metadata(metadata, verified, extra_scopes=extra_scopes)
    method = accepted["token_endpoint_auth_method"]
    secret = new_token() if method != "none" else None
    client = ClientRecord(
        client_id=new_id("app_"),
        name=accepted["client_name"],
        redirect_uris=accepted["redirect_uris"],
        scopes=accepted["scope"].split(),
        grant_types=accepted["grant_types"],
        auth_method=method,
        app_type=accepted["app_type"],
        owner_id=owner_id,
        secrets=[ClientSecret(digest(secret))] if secret else [],
        created_at=now,
        verified=verified,
        post_logout_redirect_uris=accepted["post_logout_redirect_uris"],
    )
    return RegisteredClient(client, secret)


def client_metadata(client: ClientRecord) -> dict[str, Any]:
    """The registered metadata as RFC 7591 returns it (never a secret)."""
    return {
        "client_id": client.client_id,
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": client.grant_types,
        "response_types": ["code"] if "authorization_code" in client.grant_types else [],
        "token_endpoint_auth_method": client.auth_method,
        "scope": scope_rules.format_scope(client.scopes),
        "client_id_issued_at": client.created_at,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
    }


def rotate_secret(client: ClientRecord, now: int, overlap_seconds: int) -> str:
    """A new secret; the old one keeps working for `overlap_seconds` (0: it stops at once)."""
    secret = new_token()
    live = client.live_secrets(now) if overlap_seconds > 0 else []
    kept = [ClientSecret(s.digest, now + overlap_seconds) for s in live]
    client.secrets = [ClientSecret(digest(secret)), *kept[:1]]
    return secret


def apply_metadata(client: ClientRecord, metadata: dict[str, Any], extra_scopes: Collection[str] = ()) -> None:
    """Replace a client's metadata with validated `metadata` (RFC 7592 update, Developer Settings edit).

    A confidential client stays confidential and a public one public: switching would need a secret
    issued or withdrawn, which is a new registration, not an edit.
    """
    accepted = validate_metadata(metadata, client.verified, extra_scopes=extra_scopes)
    method = accepted["token_endpoint_auth_method"]
    if (method == "none") != (client.auth_method == "none"):
        raise InvalidClientMetadata("token_endpoint_auth_method cannot change between public and confidential")
    client.name = accepted["client_name"]
    client.redirect_uris = accepted["redirect_uris"]
    client.scopes = accepted["scope"].split()
    client.grant_types = accepted["grant_types"]
    client.auth_method = method
    client.app_type = accepted["app_type"]
    client.post_logout_redirect_uris = accepted["post_logout_redirect_uris"]
