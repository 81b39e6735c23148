"""A real uvicorn server in a thread of the test process, for tests on fakes that need
real HTTP (keep-alive connections, streamed answers, the event loop's latency)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

WAIT = 30.0  # seconds: only ever reached if the server is broken


@contextmanager
def serving_in_thread(app: FastAPI) -> Iterator[tuple[str, uvicorn.Server]]:
    """`app` served on a free loopback port until the block ends: its URL and server.
    uvicorn is given no logging config (log_config=None): it would otherwise replace
    the process's logging set-up for every later test."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", server
    finally:
        server.should_exit = True
        thread.join(WAIT)
        sock.close()
