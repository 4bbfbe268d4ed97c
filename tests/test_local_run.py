"""The local run (`python -m chalicelib.local`) as a user meets it: a busy port, and a burst of requests."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.developer_support import free_port
from tests.race_support import all_at_once

ROOT = Path(__file__).resolve().parent.parent
BURST = 50
CONNECT_SECONDS = 0.9  # under TCP's 1 s SYN retransmit: a dropped connection fails, not waits


@pytest.mark.parametrize("knob", ["PORT", "MOTO_PORT"])
def test_a_busy_port_says_which_port_and_how_to_move(knob):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "PORT": str(free_port()), "MOTO_PORT": str(free_port()), knob: str(port)}
        finished = subprocess.run([sys.executable, "-m", "chalicelib.local"], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=60)
    assert finished.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in finished.stderr
    assert f" {knob}={port + 1} make run" in finished.stderr
    assert "Traceback" not in finished.stderr + finished.stdout


def test_fifty_concurrent_requests_all_get_an_answer(shared_local_run):
    """chalice local's accept queue of 5 dropped a burst's connections (clients waited for TCP's 1 s retransmit,
    or gave up); the local run queues 50 at once, so every connection is accepted by the kernel at once."""
    run = shared_local_run
    fetch = functools.partial(requests.get, run.issuer + "/.well-known/jwks.json", timeout=(CONNECT_SECONDS, 60))
    outcomes = all_at_once(*[fetch] * BURST, timeout=120)
    failures = [type(o).__name__ for o in outcomes if isinstance(o, Exception)]
    assert failures == [], f"{len(failures)} of {BURST} requests failed: {sorted(set(failures))}\n{run.log()}"
    assert [o.status_code for o in outcomes] == [200] * BURST
