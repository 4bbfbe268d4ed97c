"""Servers the tests run in a thread (the example apps, the https server for metadata documents)."""

from __future__ import annotations

import contextlib
import socketserver
import threading
from typing import Iterator

POLL_SECONDS = 0.05  # serve_forever's default of 0.5 s made every stop wait up to half a second


@contextlib.contextmanager
def served(server: socketserver.BaseServer) -> Iterator[socketserver.BaseServer]:
    """`server` answering in a thread until the block ends, then shut down and closed."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
