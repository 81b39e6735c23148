"""A real server process on the shipped models, reached over real HTTP."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "model_store"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    log: IO[bytes]  # a file, not a pipe: a full pipe would block the server

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def start_server(port: int, env: dict[str, str] | None = None, store: Path = STORE) -> Server:
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Server.stop
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service",
            "serve",
            "--port",
            str(port),
            "--model-store",
            str(store),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "SERVICE_LOG_LEVEL": "warning",
            # the shipped store has two seq2seq models: /predict's default, as make serve
            **({"SERVICE_DEFAULT_MODEL": "reverse"} if store == STORE else {}),
            **(env or {}),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return Server(process, log)


def wait_ready(url: str, server: Server, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}:\n{server.output()}"
            )
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"server at {url} not ready after {timeout} s")


@contextmanager
def running(
    env: dict[str, str] | None = None, store: Path = STORE, timeout: float = 120
) -> Iterator[tuple[str, Server]]:
    """A server process, ready, stopped on exit: its URL and the process."""
    port = free_port()
    server = start_server(port, env, store=store)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server, timeout)
        yield url, server
    finally:
        server.stop()


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
