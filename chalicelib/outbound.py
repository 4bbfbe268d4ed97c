"""Outbound HTTPS fetches of documents other parties host (Client ID Metadata Documents), made safe.

An attacker chooses the URL, so the fetch must not become a way into our network (SSRF) or a way to
hold a Lambda: https only; the host resolved once and every address checked (no private, loopback,
link-local, shared or metadata-service address; loopback only where the caller allows it, i.e. the
local stage); the connection made to the address that was checked (a second DNS answer cannot swap
in 169.254.169.254); TLS verified against the standard CA bundle (or the one the settings name); no
redirects; one deadline for connect, TLS handshake and response; a size cap. Standard library only
(DNS resolution itself is the system resolver's, with its own timeout).
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import select
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

USER_AGENT = "Clipron-OAuth/1 (client metadata fetch)"
_CHUNK = 4096


class FetchRefused(Exception):
    """The document could not be fetched safely. The message is a fixed reason (for logs), never input."""


@dataclass(frozen=True)
class Fetched:
    status: int
    content_type: str
    cache_control: str
    body: bytes


@dataclass(frozen=True)
class OutboundPolicy:
    timeout_seconds: float = 5.0
    max_bytes: int = 5 * 1024
    allow_loopback: bool = False
    ca_files: tuple[str, ...] = ()  # trusted besides the system CAs


def allowed_address(address: str, allow_loopback: bool) -> bool:
    """A globally routable unicast address (IPv4-mapped IPv6 judged as its IPv4); loopback only if allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    # is_global excludes private, link-local (169.254.169.254, fe80::), shared (100.64/10), reserved,
    # documentation and unspecified ranges; AWS's IPv6 metadata address (fd00:ec2::254) is private
    return ip.is_global and not ip.is_multicast


Address = tuple[socket.AddressFamily, tuple[Any, ...]]  # (family, sockaddr) as getaddrinfo gives them


def resolve_checked(host: str, port: int, allow_loopback: bool) -> Address:
    """Resolve once; refuse unless EVERY address is allowed (a mixed answer is a rebinding attempt)."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise FetchRefused("the host does not resolve") from None
    if not answers:
        raise FetchRefused("the host does not resolve")
    if not all(allowed_address(str(answer[4][0]), allow_loopback) for answer in answers):
        raise FetchRefused("the host resolves to a private, loopback, link-local or metadata address")
    return answers[0][0], answers[0][4]


def fetch_json_document(url: str, policy: OutboundPolicy) -> Fetched:
    """GET an https URL under the policy; FetchRefused for anything unsafe, slow, large or not a 200."""
    deadline = time.monotonic() + policy.timeout_seconds
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise FetchRefused("only https URLs are fetched")
    try:
        port = parts.port or 443
    except ValueError:
        raise FetchRefused("the URL has an invalid port") from None
    address = resolve_checked(parts.hostname, port, policy.allow_loopback)
    context = ssl.create_default_context()
    for ca_file in policy.ca_files:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError):
            raise FetchRefused("a configured CA bundle cannot be read") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{port}"
    if ":" in parts.hostname:
        host_header = f"[{parts.hostname}]" + ("" if parts.port is None else f":{port}")
    request = (f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\n"
               f"User-Agent: {USER_AGENT}\r\nConnection: close\r\n\r\n").encode("ascii")
    try:
        raw = _exchange(address, parts.hostname, context, request, policy.max_bytes + _HEADER_ALLOWANCE, deadline)
    except ssl.SSLError:
        raise FetchRefused("the TLS handshake or certificate check failed") from None
    except TimeoutError:
        raise FetchRefused(_TIMEOUT) from None
    except OSError:
        raise FetchRefused("the connection failed") from None
    return _parse(raw, policy.max_bytes)


_TIMEOUT = "the fetch took longer than the timeout"
_HEADER_ALLOWANCE = 8 * 1024


def _exchange(address: Address, host: str, context: ssl.SSLContext, request: bytes, max_bytes: int,
              deadline: float) -> bytes:
    """Connect to the checked address (no second lookup, not even of the literal), TLS with SNI and the
    certificate checked against the host name, send, and read to EOF. Every wait is bounded by what
    is left of ONE deadline: socket timeouts restart on every byte, so a trickling server could
    otherwise hold a Lambda for as long as it likes."""
    family, sockaddr = address
    with socket.socket(family, socket.SOCK_STREAM) as plain:
        plain.settimeout(_remaining(deadline))
        plain.connect(sockaddr)
        with context.wrap_socket(plain, server_hostname=host, do_handshake_on_connect=False) as tls:
            _handshake(tls, deadline)
            tls.settimeout(_remaining(deadline))
            tls.sendall(request)
            raw = bytearray()
            while True:
                tls.settimeout(_remaining(deadline))
                chunk = tls.recv(_CHUNK)
                if not chunk:
                    return bytes(raw)
                raw += chunk
                if len(raw) > max_bytes:
                    raise FetchRefused("the document is larger than the size cap")


def _handshake(tls: ssl.SSLSocket, deadline: float) -> None:
    tls.setblocking(False)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            readable, _, _ = select.select([tls], [], [], _remaining(deadline))
        except ssl.SSLWantWriteError:
            _, readable, _ = select.select([], [tls], [], _remaining(deadline))
        if not readable:
            raise FetchRefused(_TIMEOUT)
    tls.setblocking(True)


class _Replay:
    """What http.client.HTTPResponse needs of a socket, over bytes already read."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def makefile(self, *_: Any, **__: Any) -> io.BytesIO:
        return io.BytesIO(self.raw)


def _parse(raw: bytes, max_bytes: int) -> Fetched:
    """The status, the two headers we use and the body (chunked or not), by the standard parser."""
    response = http.client.HTTPResponse(_Replay(raw))  # type: ignore[arg-type]
    try:
        response.begin()
        if response.status != 200:  # 3xx included: redirects are never followed
            raise FetchRefused("the document did not answer 200 (redirects are not followed)")
        body = response.read()
    except (http.client.HTTPException, ValueError):
        raise FetchRefused("the response is not valid HTTP") from None
    if len(body) > max_bytes:
        raise FetchRefused("the document is larger than the size cap")
    return Fetched(200, response.getheader("Content-Type") or "", response.getheader("Cache-Control") or "", body)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchRefused(_TIMEOUT)
    return left
