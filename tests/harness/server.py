"""A server process reached over real HTTP: started on a free port with its output in a
file (not a pipe: a full pipe would block the server), ready once `/readyz` answers 200.

Set HARNESS_STARTS to a file name to have every start appended to it (one line each: the
module, the caller's settings), to count the processes a test run starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from tests.harness import zygote
from tests.harness.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "model_store"
# What test servers serve unless told otherwise: the shipped models but dates-transformer
# (links in tests/store/), whose Transformer adds ~3.5 s to every server start; the shared
# server_url serves the whole shipped store (SHIPPED), the Transformer's tests their own
STORE = ROOT / "tests" / "store"
SERVE = ("service", "serve")  # the service itself: TensorFlow, the model store
FAKES = ("tests.harness.fake_server",)  # the unit tests' numpy models: starts in ~1 s
POLL = 0.05  # seconds between readiness probes


@dataclass
class Server:
    process: subprocess.Popen[bytes] | zygote.Forked
    log: IO[bytes]
    port: int = 0
    log_path: Path | None = None  # the log's name, when the caller asked for a named file
    terminated: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: gone mid-request, without a clean shutdown."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def terminate(self) -> None:
        """SIGTERM, once (a second one would cut the clean shutdown short)."""
        if self.alive() and not self.terminated:
            self.process.terminate()
            self.terminated = True

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL after `timeout` seconds."""
        self.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def start_server(
    port: int | None = None,
    env: dict[str, str] | None = None,
    store: Path = STORE,
    *,
    module: Sequence[str] = SERVE,
    log: Path | None = None,
    product_defaults: bool = False,
) -> Server:
    """`python -m <module>` on `port` (a free one if None), not waited for. The service
    gets --port and --model-store; every module gets SERVICE_PORT. On the shipped store
    `/predict`'s default model is reverse, as with `make serve`. `log`: a file to keep
    the output in (a temporary file if None). `product_defaults`: the service's own
    defaults for what test servers set otherwise (SERVICE_WARMUP, SERVICE_XLA)."""
    port = port or free_port()
    argv = [sys.executable, "-m", *module]
    if tuple(module) == SERVE:
        argv += ["--port", str(port), "--model-store", str(store)]
    # lazy: a test server compiles a beam, sampling or probability graph when a test
    # first asks for one, not all of them on a background thread while the suite runs
    # XLA off: a test server would otherwise compile an XLA program for every new shape
    # its tests send, on threads competing with the suite (measured on the shared
    # server_url: 145 CPU-seconds with XLA, lazy; 185 with background warm-up; 46 without
    # XLA). tests/integration/test_xla*.py test XLA; the `default_server` runs defaults
    defaults = {"SERVICE_LOG_LEVEL": "warning"}
    if not product_defaults:
        defaults |= {"SERVICE_WARMUP": "lazy", "SERVICE_XLA": "off"}
    if tuple(module) == SERVE and store in (STORE, SHIPPED):
        defaults["SERVICE_DEFAULT_MODEL"] = "reverse"
    out = log.open("w+b") if log is not None else tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop
    record(module, env or {})
    process = zygote.popen(
        argv,
        {**os.environ, **defaults, **(env or {}), "SERVICE_PORT": str(port)},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    return Server(process, out, port, log)


def record(module: Sequence[str], env: dict[str, str]) -> None:
    starts = os.environ.get("HARNESS_STARTS")
    if starts:
        caller = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
        with open(starts, "a") as f:
            f.write(f"{' '.join(module)}\t{caller}\t{sorted(env)}\n")


def wait_ready(
    server: Server,
    timeout: float = 120,
    probe_timeout: float = 1,
    cancel: Callable[[], bool] | None = None,
) -> None:
    """Until `/readyz` answers 200 (or `cancel()` is true); a process that exits first
    raises with its output."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=probe_timeout) as probe:
        while cancel is None or not cancel():
            if not server.alive():
                raise RuntimeError(
                    f"server exited with {server.process.returncode}:\n{server.output()[-10_000:]}"
                )
            try:
                if probe.get(f"{server.url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server at {server.url} not ready after {timeout} s")
            time.sleep(POLL)


@contextmanager
def running(
    env: dict[str, str] | None = None,
    store: Path = STORE,
    timeout: float = 120,
    *,
    module: Sequence[str] = SERVE,
    log: Path | None = None,
    product_defaults: bool = False,
) -> Iterator[tuple[str, Server]]:
    """A server process, ready, stopped on exit: its URL and the process."""
    server = start_server(
        None, env, store, module=module, log=log, product_defaults=product_defaults
    )
    try:
        wait_ready(server, timeout)
        yield server.url, server
    finally:
        server.stop()
