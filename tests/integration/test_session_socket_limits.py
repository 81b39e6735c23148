"""Session WebSockets and the server's bounds, on servers of their own over the fakes (no
TensorFlow: each starts in about a second): the connection cap counts upgraded
connections until they close, the message size limit (1009), the idle timeout (1000) and
a graceful shutdown (1001, exit 0)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from service.client import Client, NotFound
from tests.harness import FAKES, Server, start_server, wait_ready

pytestmark = pytest.mark.integration

WAIT = 20.0


CAPPED = {
    "SERVICE_MAX_CONNECTIONS": "3",
    "SERVICE_PROBE_CONNECTIONS": "1",
    "SERVICE_WS_MAX_MESSAGE_BYTES": "2048",
}
QUICK = {"SERVICE_WS_IDLE_TIMEOUT_SECONDS": "1", "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "5"}
# every batch waits 1 s to fill: a step is still in progress when SIGTERM comes; a request
# on a session whose step holds its lock is refused (503) after 0.05 s
SLOW_STEPS = {
    "SERVICE_BATCH_MAX_DELAY_MS": "1000",
    "SERVICE_SESSION_LOCK_WAIT_SECONDS": "0.05",
    "SERVICE_WS_IDLE_TIMEOUT_SECONDS": "60",
    "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "10",
}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Server]]:
    """Started together (a second each): the capped one, one to idle on, one to stop."""
    envs = {"capped": CAPPED, "idle": QUICK, "stopped": SLOW_STEPS}
    started = {
        name: start_server(None, {"SERVICE_LOG_LEVEL": "info", **env}, module=FAKES)
        for name, env in envs.items()
    }
    try:
        for server in started.values():
            wait_ready(server, 60)
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture
def capped(servers: dict[str, Server]) -> Server:
    return servers["capped"]


def sessions(server: Server, count: int) -> list[str]:
    with httpx.Client(base_url=server.url, timeout=WAIT) as http:
        return [
            http.post("/v1/sessions", json={"model": "stepper"}).json()["session_id"]
            for _ in range(count)
        ]


def url(server: Server, session_id: str) -> str:
    return f"ws://127.0.0.1:{server.port}/v1/sessions/{session_id}/ws"


def ask(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    ws.send(json.dumps(message))
    answer: dict[str, Any] = json.loads(ws.recv(timeout=WAIT))
    return answer


def fresh_get(server: Server, path: str) -> httpx.Response:
    """On a new connection each time (the cap decides per connection)."""
    with httpx.Client(base_url=server.url, timeout=WAIT) as http:
        return http.get(path)


def test_open_websockets_count_under_the_cap_until_they_close(capped: Server) -> None:
    ids = sessions(capped, 4)
    for _ in range(2):  # opened and closed: each gives its place back
        for session_id in ids[:3]:
            with connect(url(capped, session_id)) as ws:
                assert ask(ws, {"inputs": [1]})["outputs"]
    held = [connect(url(capped, session_id), legacy=True) for session_id in ids[:3]]
    try:
        for ws in held:  # each one in use: none is idle, none gives way
            assert ask(ws, {"inputs": [1]})["outputs"]
        refused = fresh_get(capped, "/v1/models")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "too_many_connections"
        assert fresh_get(capped, "/healthz").status_code == 200  # the probe band
        with pytest.raises(InvalidStatus) as upgrade:  # not upgraded in the probe band
            connect(url(capped, ids[3]), legacy=True)
        assert upgrade.value.response.status_code == 503
        for ws in held:  # still served
            assert ask(ws, {"inputs": [2]})["outputs"]
    finally:
        for ws in held:
            ws.close()
    deadline = time.monotonic() + WAIT
    while fresh_get(capped, "/v1/models").status_code != 200:  # the closes reach the server
        assert time.monotonic() < deadline, "the closed WebSockets kept their places"


def test_a_message_over_the_limit_closes_with_1009_and_one_under_it_is_answered(
    capped: Server,
) -> None:
    (session_id,) = sessions(capped, 1)
    with connect(url(capped, session_id)) as ws:
        under = {"inputs": [1] * 600}  # about 1,800 bytes: SERVICE_WS_MAX_MESSAGE_BYTES is 2048
        assert ask(ws, under)["steps"] == 600
        ws.send(json.dumps({"inputs": [1] * 1000}))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_an_idle_websocket_is_closed_with_1000_naming_the_setting(
    servers: dict[str, Server],
) -> None:
    idle = servers["idle"]
    (session_id,) = sessions(idle, 1)
    with connect(url(idle, session_id)) as ws:
        assert ask(ws, {"inputs": [1]})["steps"] == 1
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT)  # nothing sent for 1 s (SERVICE_WS_IDLE_TIMEOUT_SECONDS)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    assert "SERVICE_WS_IDLE_TIMEOUT_SECONDS" in closed.value.rcvd.reason


def test_the_client_steps_on_over_a_new_connection_after_the_server_closed_one(
    servers: dict[str, Server],
) -> None:
    idle = servers["idle"]
    with Client(idle.url) as client, client.session("stepper") as session:
        socket = session.socket()
        assert socket.step([1]).steps == 1
        # a connection opened after the client's last message: once the server has closed
        # it as idle, it has closed the client's too
        (other,) = sessions(idle, 1)
        with connect(url(idle, other)) as later, pytest.raises(ConnectionClosed):
            later.recv(timeout=WAIT)
        assert socket.step([1, 2]).steps == 3  # sent again on a new connection, applied once
        client.delete_session(session.id)
        with pytest.raises(NotFound):
            socket.step([1])
        socket.close()


def test_shutdown_answers_the_step_in_progress_then_closes_with_1001_and_exits_0(
    servers: dict[str, Server],
) -> None:
    stopped = servers["stopped"]
    idle_id, busy_id = sessions(stopped, 2)
    with (
        connect(url(stopped, idle_id)) as idle,
        connect(url(stopped, busy_id)) as busy,
        httpx.Client(base_url=stopped.url, timeout=WAIT) as http,
    ):
        busy.send(json.dumps({"id": "in progress", "inputs": [1]}))
        # the step holds its session's lock while it waits for its batch
        deadline = time.monotonic() + WAIT
        while http.post(f"/v1/sessions/{busy_id}/reset").status_code != 503:
            assert time.monotonic() < deadline, "the step never held its session"
        stopped.terminate()  # SIGTERM
        with pytest.raises(ConnectionClosed) as idle_closed:
            idle.recv(timeout=WAIT)
        answer = json.loads(busy.recv(timeout=WAIT))
        with pytest.raises(ConnectionClosed) as busy_closed:
            busy.recv(timeout=WAIT)
    assert answer["id"] == "in progress" and answer["steps"] >= 1
    for closed in (idle_closed, busy_closed):
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert stopped.process.wait(timeout=WAIT) == 0
