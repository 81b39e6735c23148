"""SIGTERM: readiness 503 at once, in-flight work completes, exit 0; Redis loses nothing."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REDIS
from tests.harness import STORE, Server, start_server, wait_ready
from tests.harness.early import Plan, Prepared
from tests.harness.http import HTTP
from tests.integration.conftest import EARLY

pytestmark = pytest.mark.integration

SOURCE = [20, 36, 40, 10, 34, 28]


def one_model_store(root: Path, name: str) -> Path:
    shutil.copytree(STORE / name / "1", root / name / "1")
    return root


def started(env: dict[str, str], store: Path) -> tuple[Server, str]:
    server = start_server(None, env, store=store)
    wait_ready(server)
    return server, server.url


# Every batch waits 6 s to fill, so a request sent before SIGTERM is still queued in its
# batcher after the 3 s delay, when the server stops accepting connections.
EARLY.plan(
    "draining_server",
    Plan(
        {
            "SERVICE_LOG_LEVEL": "info",
            "SERVICE_SHUTDOWN_DELAY_SECONDS": "3",
            "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "20",
            "SERVICE_BATCH_MAX_DELAY_MS": "6000",
        },
        store=lambda root: one_model_store(root, "reverse"),
    ),
)


def redis_env() -> dict[str, str]:
    return {
        "SERVICE_LOG_LEVEL": "info",
        "SERVICE_SESSION_BACKEND": "redis",
        "SERVICE_REDIS_URL": REDIS.get().url,
        "SERVICE_REDIS_PREFIX": f"shutdown-{time.monotonic_ns()}:",
        "SERVICE_SHUTDOWN_DELAY_SECONDS": "0.5",
    }


EARLY.plan(
    "redis_backed_server", Plan(redis_env, store=lambda root: one_model_store(root, "memory"))
)


@pytest.fixture
def draining_server() -> Iterator[Server]:
    """A server of its own: the test stops it."""
    try:
        yield EARLY.server("draining_server")
    finally:
        EARLY.release("draining_server")


@pytest.fixture
def redis_backed_server() -> Iterator[Prepared]:
    """A server of its own on the session's Redis: the test stops it, and starts another
    with the same settings and store."""
    try:
        yield EARLY.prepared("redis_backed_server")
    finally:
        EARLY.release("redis_backed_server")


def in_background(call: Callable[[], httpx.Response]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(call())
        except Exception as exc:  # reported by the assertions on `result`
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_sigterm_turns_readiness_503_finishes_in_flight_work_and_exits_0(
    draining_server: Server,
) -> None:
    # (Generous margins: the machine running the tests may be busy.)
    server, url = draining_server, draining_server.url
    try:
        body = {"inputs": [SOURCE]}
        first, first_result = in_background(
            lambda: HTTP.post(f"{url}/v1/models/reverse/predict", json=body, timeout=60)
        )
        stats = f"{url}/v1/stats"
        wait_until(
            lambda: HTTP.get(stats).json().get("reverse/1 predict", {}).get("queued_rows") == 1,
            10,
            "the first request never queued",
        )
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: HTTP.get(f"{url}/readyz").status_code == 503, 2, "still ready")
        r = HTTP.get(f"{url}/readyz")
        assert r.json()["status"] == "draining" and r.headers["retry-after"] == "1"
        assert time.monotonic() - signalled < 2, "the delay is nearly over; machine too busy"
        second, second_result = in_background(  # sent during the delay: served
            lambda: HTTP.post(f"{url}/v1/models/reverse/predict", json=body, timeout=60)
        )
        wait_until(
            lambda: HTTP.get(stats).json()["reverse/1 predict"]["queued_rows"] == 2,
            1,
            "the second request never queued",
        )
        wait_until(lambda: _refused(url), 10, "still accepting connections after the delay")
        assert first.is_alive() and second.is_alive()  # in flight when accepting stopped
        assert server.process.wait(timeout=20) == 0, server.output()
        for thread, result in ((first, first_result), (second, second_result)):
            thread.join(timeout=5)
            assert isinstance(result[0], httpx.Response), result
            assert result[0].status_code == 200, result[0].text
            assert result[0].json()["outputs"] == [[40, 36, 20]]
        log = server.output()
        assert "Traceback" not in log and "shutting down: readiness 503" in log, log
    finally:
        server.stop()  # closes its log; no signal once it has exited


def _refused(url: str) -> bool:
    try:
        HTTP.get(f"{url}/healthz", timeout=1)
    except httpx.TransportError:
        return True
    return False


def test_redis_sessions_keep_every_acknowledged_step_across_a_graceful_restart(
    redis_backed_server: Prepared,
) -> None:
    env, store = redis_backed_server.env, redis_backed_server.store
    server, url = redis_backed_server.server, redis_backed_server.server.url
    try:
        r = HTTP.post(f"{url}/v1/sessions", json={"model": "memory"})
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        acknowledged = 0

        def step_until_refused() -> None:
            nonlocal acknowledged
            with httpx.Client(base_url=url, timeout=30) as client:
                while True:
                    try:
                        r = client.post(f"/v1/sessions/{sid}/step", json={"inputs": [0]})
                    except httpx.TransportError:
                        return
                    assert r.status_code == 200, r.text
                    acknowledged = r.json()["steps"]

        stepper = threading.Thread(target=step_until_refused, daemon=True)
        stepper.start()
        wait_until(lambda: acknowledged >= 5, 30, "no steps acknowledged")
        server.process.send_signal(signal.SIGTERM)
        stepper.join(timeout=30)
        assert not stepper.is_alive()
        assert server.process.wait(timeout=20) == 0, server.output()
    finally:
        server.stop()  # closes its log; no signal once it has exited
    server, url = started(env, store)
    try:
        r = HTTP.get(f"{url}/v1/sessions/{sid}")
        assert r.status_code == 200, r.text
        assert r.json()["steps"] == acknowledged
    finally:
        server.stop()
