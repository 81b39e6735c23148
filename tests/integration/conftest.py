"""A real server process on the shipped models, reached over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT, running


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    with running({"SERVICE_MAX_SESSIONS": "1000"}) as (url, _):
        yield url


@pytest.fixture
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=60) as client:
        yield client


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
