"""What a connection sees over real HTTP (uvicorn in a thread, numpy fakes): a 500
leaves the keep-alive connection usable, and a client leaving a stream is an ordinary
end, logged as one INFO line without a traceback."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.config import Settings
from service.inference.model.interface import LoadedModel, States
from service.inference.model.registry import Registry
from tests.fakes import CounterCompute, model
from tests.harness.threaded import serving_in_thread
from tests.unit.test_streaming_fakes import PermittedCompute

pytestmark = pytest.mark.unit
WAIT = 10.0  # seconds: only ever reached if the server is broken


class FailingCompute(CounterCompute):
    """A bug in a model: every decoder step raises once armed (warm-up steps pass)."""

    armed = False

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        if self.armed:
            raise RuntimeError("a bug in the model")
        return super().step(tokens, states)


@contextmanager
def running(app: FastAPI) -> Iterator[tuple[int, uvicorn.Server]]:
    """`app` served by uvicorn on a free port: the port and the server."""
    with serving_in_thread(app) as (url, server):
        yield int(url.rsplit(":", 1)[1]), server


def served(compute_type: type[CounterCompute]) -> tuple[FastAPI, CounterCompute]:
    base = model()
    compute = compute_type(base.spec)
    registry = Registry({"counter": {1: LoadedModel(base.spec, compute)}})
    return create_app(Settings(access_log=False), registry=registry), compute


def test_a_500_leaves_the_keep_alive_connection_usable() -> None:
    app, compute = served(FailingCompute)
    with running(app) as (port, _):
        assert isinstance(compute, FailingCompute)
        compute.armed = True
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        try:
            body = json.dumps({"inputs": [[1, 2]]})
            connection.request("POST", "/v1/models/counter/predict", body=body)
            failed = connection.getresponse()
            assert failed.status == 500
            assert json.loads(failed.read())["error"]["code"] == "internal_error"
            # the server keeps the connection: it does not say it closes it, and it doesn't
            assert failed.getheader("connection") is None
            for _ in range(2):  # the same connection, not a new one
                connection.request("GET", "/v1/models/counter")
                answer = connection.getresponse()
                assert answer.status == 200 and json.loads(answer.read())["name"] == "counter"
                compute.armed = False
                connection.request("POST", "/v1/models/counter/predict", body=body)
                answer = connection.getresponse()
                assert answer.status == 200, answer.read()
                assert json.loads(answer.read())["outputs"]
                compute.armed = True
        finally:
            connection.close()


def test_a_client_leaving_a_stream_is_one_info_line_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, compute = served(PermittedCompute)
    assert isinstance(compute, PermittedCompute)
    with running(app) as (port, server), caplog.at_level(logging.INFO):
        compute.armed = True
        compute.allow(1)
        client = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        body = json.dumps({"inputs": [[1, 2]], "max_steps": 8, "stream": True}).encode()
        head = f"POST /v1/models/counter/predict HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}"
        client.sendall(head.encode() + b"\r\n\r\n" + body)
        received = b""
        while b"event: token" not in received:
            chunk = client.recv(4096)
            assert chunk, received
            received += chunk
        assert compute.started.acquire(timeout=WAIT)  # the second step waits for a permit
        assert compute.started.acquire(timeout=WAIT)
        client.close()
        deadline = time.monotonic() + WAIT
        while server.server_state.connections:  # the server has seen the client leave
            assert time.monotonic() < deadline
            time.sleep(0.01)
        compute.allow(10)  # the second token is decoded for a client that is gone
        while not [r for r in caplog.records if r.getMessage().startswith("stream")]:
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.01)
    assert compute.steps <= 3  # decoding stopped
    serious = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not serious, [(r.levelname, r.getMessage()) for r in serious]
    (left,) = [r for r in caplog.records if "went away" in r.getMessage()]
    assert left.levelno == logging.INFO and left.name == "service"
    assert left.getMessage() == "stream ended: the client went away after 1 event(s)"


def test_a_client_leaving_before_its_body_ends_is_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = model()
    app = create_app(Settings(), registry=Registry({"counter": {1: base}}))
    with running(app) as (port, server), caplog.at_level(logging.INFO):
        client = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        head = "POST /v1/models/counter/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 1000"
        client.sendall(head.encode() + b"\r\n\r\n" + b'{"inputs": [[1')  # then hangs up
        client.close()
        deadline = time.monotonic() + WAIT
        while not [r for r in caplog.records if r.name == "service.access"]:
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.01)
    serious = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not serious, [(r.levelname, r.getMessage()) for r in serious]
    (left,) = [r for r in caplog.records if "went away" in r.getMessage()]
    assert left.levelno == logging.INFO and left.name == "service"
    (access,) = [r for r in caplog.records if r.name == "service.access"]
    assert '"POST /v1/models/counter/predict HTTP/1.1" 499' in access.getMessage()
