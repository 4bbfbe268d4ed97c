"""An https server with its own CA, for Client ID Metadata Document tests (127.0.0.1, a free port).

Each test says how the server answers (`Behaviour`): the document, the status, extra headers, a
delay before answering, or a body trickled byte by byte. The CA file is what the fetcher trusts
(the way SSL_CERT_FILE / REQUESTS_CA_BUNDLE make it trust one in the local run).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.server_support import served

HOST_NAMES = ("localhost", "cimd.test")


@dataclass
class Behaviour:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay_seconds: float = 0.0
    trickle_seconds: float = 0.0  # pause between body bytes (headers first), no Content-Length
    requests: list[str] = field(default_factory=list)  # paths asked for, in order

    def document(self, document: dict[str, Any], **headers: str) -> None:
        self.body = json.dumps(document).encode()
        self.headers = {"Content-Type": "application/json", **headers}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, issuer: str, public_key: Any, signing_key: Any, ca: bool,
                 names: tuple[str, ...] = ()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        alternatives = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                                        critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def make_ca(directory: Path, ca_name: str = "Clipron test CA") -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) PEM files; the server is 127.0.0.1 and HOST_NAMES."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate("127.0.0.1", ca_name, server_key.public_key(), ca_key, ca=False, names=HOST_NAMES)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


class _Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        behaviour = self.server.behaviour  # type: ignore[attr-defined]
        behaviour.requests.append(self.path)
        if behaviour.delay_seconds:
            time.sleep(behaviour.delay_seconds)
        self.send_response(behaviour.status)
        for name, value in behaviour.headers.items():
            self.send_header(name, value)
        if behaviour.trickle_seconds:
            self.end_headers()
            for byte in behaviour.body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(behaviour.trickle_seconds)
            return
        self.send_header("Content-Length", str(len(behaviour.body)))
        self.end_headers()
        self.wfile.write(behaviour.body)

    def log_message(self, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the fetcher hanging up early (size cap, timeout) is what these tests provoke


class TlsServer:
    """A threaded https server; `url(path)` is https://127.0.0.1:<port><path>."""

    def __init__(self, directory: Path) -> None:
        self.ca_file, cert, key = make_ca(directory)
        self.behaviour = Behaviour()
        self.httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self.httpd.behaviour = self.behaviour  # type: ignore[attr-defined]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._serving = served(self.httpd)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def __enter__(self) -> TlsServer:
        self._serving.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._serving.__exit__(*exc)


def tls_server() -> Iterator[TlsServer]:
    """A generator for a pytest fixture: the server runs for the test and stops after it."""
    with tempfile.TemporaryDirectory() as scratch, TlsServer(Path(scratch)) as server:
        yield server
