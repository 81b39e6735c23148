"""Real server processes on the shipped models, reached over real HTTP.

Two are shared by the whole session, each started at most once, and both at once (their
loads overlap) when the first test that needs either runs: `server_url`, open to all, and
`keyed_server`, with API keys (one owner per test module that needs keys, so what one
creates the others cannot see) and info logs with the access log.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from service.inference.model.interface import LoadedModel

from tests.harness import ROOT, STORE, Server, running, start_server, wait_ready

API_KEYS = {
    "alice": "alice-7f3a9c1e5b2d4f6a",  # test_security_http.py
    "bob": "bob-2e4c6a8b0d1f3e5a",  # test_security_http.py
    "client": "client-3c1e5b2d4f6a7f3a9",  # test_client.py
    "docs": "docs-browser-0123456789abcdef",  # test_docs_browser.py
}
SHARED = {
    "server_url": {"SERVICE_MAX_SESSIONS": "1000"},
    "keyed_server": {
        "SERVICE_API_KEYS": ",".join(f"{owner}:{key}" for owner, key in API_KEYS.items()),
        "SERVICE_LOG_LEVEL": "info",
        "SERVICE_ACCESS_LOG": "true",
    },
}
needed: set[str] = set()  # the shared servers the selected tests use


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        needed.update(name for name in SHARED if name in getattr(item, "fixturenames", ()))


class Shared:
    """The shared servers, started together on first use, each waited for when asked."""

    def __init__(self) -> None:
        self.servers: dict[str, Server] = {}

    def get(self, name: str) -> Server:
        if name not in self.servers:
            for other in sorted((needed | {name}) - set(self.servers)):
                self.servers[other] = start_server(None, SHARED[other])
        server = self.servers[name]
        wait_ready(server)
        return server

    def stop(self) -> None:
        for server in self.servers.values():
            server.terminate()
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="session")
def shared() -> Iterator[Shared]:
    servers = Shared()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def server_url(shared: Shared) -> str:
    return shared.get("server_url").url


@pytest.fixture(scope="session")
def keyed_server(shared: Shared) -> tuple[str, Server]:
    server = shared.get("keyed_server")
    return server.url, server


@pytest.fixture
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def shipped_models() -> dict[str, LoadedModel]:
    """The shipped store loaded into this process once, for the tests that call the
    compiled graphs directly (test_engine.py, test_strategies.py); they only read it."""
    from service.inference.compiled.loader import load_store

    registry = load_store(STORE)
    return {name: registry.get(name) for name in registry.names()}


@contextmanager
def serving(store: Path) -> Iterator[str]:
    """A server process on another model store (slow start-ups allowed: many models)."""
    with running(store=store, timeout=300) as (url, _):
        yield url


@pytest.fixture(scope="session")
def keras2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real Keras 2 files (tests/keras2_files.py, run with tf_keras in its own process)
    and Keras 2's own predictions and decodes."""
    out = tmp_path_factory.mktemp("keras2")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "keras2_files.py"), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out
