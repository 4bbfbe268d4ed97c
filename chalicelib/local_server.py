"""`chalice local` as the local run starts it: the same server, with an accept queue for bursts.

chalice's ThreadedHTTPServer keeps socketserver's listen backlog of 5, so a burst of concurrent
connections (a test suite, an agent fan-out, a page with many assets) got connection resets. Each
accepted connection already gets its own thread; only the queue in front of accept() was short.
Run as `python -m chalicelib.local_server local --host ... --port ...` (chalice's own arguments).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

LISTEN_BACKLOG = 128  # connections the kernel queues before accept(); the local run takes 50 at once


def main(argv: Sequence[str]) -> int:
    from chalice.cli import main as chalice_main
    from chalice.local import ThreadedHTTPServer

    from chalicelib import local_routes

    ThreadedHTTPServer.request_queue_size = LISTEN_BACKLOG
    local_routes.install()  # unknown paths at any depth reach our 404 (web/home.py), as on API Gateway
    sys.argv = ["chalice", *argv]
    return chalice_main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
