"""Real server processes on the shipped models, reached over real HTTP.

Three are shared by the whole session: `server_url`, open to all, `keyed_server`, with
API keys (one owner per test module that needs keys, so what one creates the others
cannot see) and info logs with the access log, and `default_server`, the service's own
defaults (XLA, background warm-up) on `reverse`, for what only those show. They, the
Keras 2 files (`keras2_dir`) and the servers test modules plan with `EARLY`, are started
in the background as soon as the tests to run are known, if any of them needs them
(tests/harness/early.py).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.harness import ROOT, SHIPPED, STORE, Server, running
from tests.harness.early import Early, Plan
from tests.harness.jobs import Job

if TYPE_CHECKING:
    from service.inference.model.interface import LoadedModel

API_KEYS = {
    "alice": "alice-7f3a9c1e5b2d4f6a",  # test_security_http.py
    "bob": "bob-2e4c6a8b0d1f3e5a",  # test_security_http.py
    "client": "client-3c1e5b2d4f6a7f3a9",  # test_client.py
    "docs": "docs-browser-0123456789abcdef",  # test_docs_browser.py
    "socket": "socket-5d2b8f0a6c4e1937",  # test_session_socket.py
    "socket-other": "socket-other-8a1c3e5f7b9d0246",  # test_session_socket.py
}
SHARED = {
    "server_url": {"SERVICE_MAX_SESSIONS": "1000"},
    "keyed_server": {
        "SERVICE_API_KEYS": ",".join(f"{owner}:{key}" for owner, key in API_KEYS.items()),
        "SERVICE_LOG_LEVEL": "info",
        "SERVICE_ACCESS_LOG": "true",
    },
}

EARLY = Early()
EARLY.plan("server_url", Plan(SHARED["server_url"], store=lambda _: SHIPPED))
EARLY.plan("keyed_server", Plan(SHARED["keyed_server"]))


def reverse_store(directory: Path) -> Path:
    (directory / "reverse").symlink_to(SHIPPED / "reverse")
    return directory


# XLA compiles in the background after ready (~6 CPU-seconds on this one model)
EARLY.plan("default_server", Plan(store=reverse_store, product_defaults=True))


def keras2_files(selected: set[str]) -> Job:
    """tests/keras2_files.py, run with tf_keras in its own process, into a new directory."""
    out = Path(tempfile.mkdtemp(prefix="keras2-"))
    argv = [sys.executable, str(ROOT / "tests" / "keras2_files.py"), str(out)]
    return Job(argv, out=out, nice=10, cleanup=out)


EARLY.add_job("keras2_dir", keras2_files)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Before the first test: start what the selected tests will use (not on --co)."""
    if session.config.option.collectonly:
        return
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        return  # collection errors: no test will run
    EARLY.launch(session.items)


def pytest_sessionfinish() -> None:
    EARLY.stop()


@pytest.fixture(scope="session")
def server_url() -> str:
    return EARLY.server("server_url").url


@pytest.fixture(scope="session")
def default_server() -> str:
    return EARLY.server("default_server").url


@pytest.fixture(scope="session")
def keyed_server() -> tuple[str, Server]:
    server = EARLY.server("keyed_server")
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

    registry = load_store(STORE, warm_up=False)
    return {name: registry.get(name) for name in registry.names()}


@contextmanager
def serving(store: Path) -> Iterator[str]:
    """A server process on another model store (slow start-ups allowed: many models)."""
    with running(store=store, timeout=300) as (url, _):
        yield url


def built_keras2_files() -> Path:
    """The Keras 2 files, once written (by the job `keras2_dir`, started if it was not)."""
    job: Job = EARLY.job("keras2_dir")
    result = job.result(timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"tests/keras2_files.py failed:\n{result.stderr[-3000:]}")
    assert job.out is not None
    return job.out


@pytest.fixture(scope="session")
def keras2_dir() -> Path:
    """Real Keras 2 files (tests/keras2_files.py, run with tf_keras in its own process)
    and Keras 2's own predictions and decodes."""
    return built_keras2_files()
