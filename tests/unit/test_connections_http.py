"""What a connection sees over real HTTP (uvicorn in a thread, numpy fakes): a 500
leaves the keep-alive connection usable."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.config import Settings
from service.inference.base import LoadedModel, States
from service.inference.registry import Registry
from tests.fakes import CounterCompute, model

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
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield sock.getsockname()[1], server
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()


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
