"""Shared fixtures: the provisioned services (moto, or MemoryStore where a module opts in), the app.

`aws` gives a clean world per test: on moto by default (tables, KMS key and signing keys provisioned
once per process, items reset between tests; see tests/worlds.py). A module or test marked
`@pytest.mark.store("memory")` gets the same services on MemoryStore with an in-process KMS stand-in
instead, and any AWS call fails the test: for protocol rules that need no DynamoDB behaviour.
`@pytest.mark.store("dynamo")` on a test overrides its module's mark.
"""

from __future__ import annotations

import atexit
import gc
import os
import re
import sys
from pathlib import Path

# The environment must be set before the app is imported (chalice.test only patches it per request).
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "STAGE": "local",
        "ISSUER_URL": "http://127.0.0.1:8000",
    }
)
for _name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "OAUTH_TABLE", "API_TABLE", "KMS_KEY_ID"):
    os.environ.pop(_name, None)

import pytest  # noqa: E402

from tests.worlds import MemoryWorld, MotoWorld  # noqa: E402

_moto = MotoWorld()
_memory = MemoryWorld()

# Tests allocate many short-lived containers (moto copies every item it serves): at the default threshold of
# 700 a worker ran ~1,800 collections, half of them full ones over the whole heap, ~4 s of each worker's time.
gc.set_threshold(20_000, 20, 20)


def pytest_collection_finish(session):
    """What collection imported (botocore, moto, the app, the test modules) lives for the whole run: keep it
    out of every later collection."""
    gc.collect()
    gc.freeze()


def _exit_without_finalizing() -> None:
    """An xdist worker has sent its results when it exits: run the exit handlers, then skip tearing down a
    heap of moto backends and botocore models object by object (about 2 s at the end of every run)."""
    atexit.unregister(_exit_without_finalizing)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if os.environ.get("PYTEST_XDIST_WORKER"):
    atexit.register(_exit_without_finalizing)


@pytest.fixture
def aws(request, monkeypatch):
    """The services on a clean world: tables, KMS key and signing keys provisioned, no other item."""
    marker = request.node.get_closest_marker("store")
    kind = marker.args[0] if marker else "dynamo"
    if kind not in ("dynamo", "memory"):
        raise ValueError(f"store({kind!r}): use 'dynamo' or 'memory'")
    with _memory.session(monkeypatch) if kind == "memory" else _moto.session() as services:
        yield services


@pytest.fixture
def http(aws):
    """chalice.test's client: the same local gateway `chalice local` runs."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield client.http


@pytest.fixture
def clients(aws):
    """Revocation and introspection: confidential c1 and c2, public p1, resource server rs1."""
    from tests.lifecycle_helpers import make_client

    for client_id in ("c1", "c2"):
        make_client(aws, client_id)
    make_client(aws, "p1", public=True)
    make_client(aws, "rs1", resource_server=True)
    return aws


@pytest.fixture
def world(aws):
    """The token endpoint's tests: a user and clients C1, C2, P1, P2, M1, POST1, NORT, CC1 on the store, and
    codes written straight to it (tests/token_helpers.make_world)."""
    from tests.token_helpers import make_world

    return make_world(aws)


@pytest.fixture(scope="session")
def shared_local_run(tmp_path_factory):
    """One `make run` (chalicelib.local: moto server + chalice local) per worker for the modules that drive
    the local run; each test registers its own clients, so they do not disturb each other. Started as the
    agents test needs it too: its demo MCP resource on a free port, trusting the CA of an https server that
    serves Client ID Metadata Documents."""
    from tests.developer_support import free_port, local_run
    from tests.tls_support import TlsServer

    scratch = tmp_path_factory.mktemp("shared-local-run")
    resource = f"http://127.0.0.1:{free_port()}/mcp"
    with TlsServer(scratch) as documents, local_run(scratch, extra_env={
            "DEMO_MCP_RESOURCE": resource, "SSL_CERT_FILE": str(documents.ca_file)}) as run:
        run.documents, run.mcp_resource = documents, resource
        yield run


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium per worker for the tests that drive it from the test's thread; it holds the
    thread's Playwright loop for the session, so async code (the agents test) runs in a thread of its own."""
    from tests.browser_support import launched

    with launched() as browser:
        yield browser


@pytest.fixture
def browser_page(chromium):
    """A page in a fresh browser context: no cookie or storage from another test."""
    context = chromium.new_context()
    context.set_default_timeout(15000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def packaged(tmp_path_factory):
    """`chalice package` of each stage with its merge template, once per worker: {stage: (template, out dir)}."""
    from tests.package_support import package_stages

    return package_stages(tmp_path_factory.mktemp("package"))


# fixtures one worker builds once for every module that asks for them: those modules run on that worker
WORKER_FIXTURES = ("shared_local_run", "packaged")
# a module defining a fixture shared by its tests (a local run, a browser, packaged templates)
SHARED_FIXTURE = re.compile(r"@pytest\.fixture\([^)]*scope=[\"'](?:module|class|package)[\"']")


def pytest_xdist_make_scheduler(config, log):
    """`-n auto` spreads tests one by one, except that a module with a shared fixture runs whole on one
    worker, so its local run or browser starts once, and the modules asking for one of WORKER_FIXTURES share
    one worker that builds it once. (xdist 3.8's loadgroup cannot do this under
    pytest 9: it renames `item._nodeid`, which pytest 9 no longer reads, and so groups nothing.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    tests = Path(config.rootpath) / "tests"
    shared = {path.relative_to(config.rootpath).as_posix() for path in tests.glob("test_*.py")
              if SHARED_FIXTURE.search(path.read_text())}

    by_fixture = {}
    for path in tests.glob("test_*.py"):
        for fixture in WORKER_FIXTURES:
            if re.search(rf"def \w+\([^)]*\b{fixture}\b", path.read_text()):
                by_fixture[path.relative_to(config.rootpath).as_posix()] = fixture

    class SharedFixtureModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module in by_fixture:
                return by_fixture[module]  # one worker builds the fixture once for all of them
            return module if module in shared else nodeid

    return SharedFixtureModules(config, log)
