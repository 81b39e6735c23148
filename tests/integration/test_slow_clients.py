"""Slow, idle and oversized clients, with raw sockets against real server processes
(`service.server.serve` on the unit tests' numpy models: tests/harness/fake_server.py).

Two servers, started together: `quick` with 1 s header and body timeouts, an 8 KiB header
bound and a cap of 16 connections; `capped` with a cap of 8 and timeouts long enough to
hold requests in progress while the test looks.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import harness
from tests.harness import FAKES, start_server, wait_ready
from tests.harness.http import HTTP

pytestmark = pytest.mark.integration
WAIT = 10.0  # seconds: reached only if the server is broken
PARTIAL = b"GET /v1/models HTTP/1.1\r\nHost: test\r\nX-Slow: "
STALLED = b'POST /predict HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{"inputs": '


class Server(harness.Server):
    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if "VmRSS" in line) / 1024

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)
        return sock


def start(env: dict[str, str]) -> Server:
    """A server on the fakes (no TensorFlow: it starts in about a second)."""
    server = start_server(None, {"SERVICE_LOG_LEVEL": "info", **env}, module=FAKES)
    return Server(server.process, server.log, server.port)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    quick = start(
        {
            "SERVICE_HEADER_TIMEOUT_SECONDS": "1",
            "SERVICE_BODY_TIMEOUT_SECONDS": "1",
            "SERVICE_MAX_HEADER_BYTES": "8192",
            "SERVICE_MAX_CONNECTIONS": "16",
        }
    )
    capped = start({"SERVICE_MAX_CONNECTIONS": "8", "SERVICE_PROBE_CONNECTIONS": "4"})
    try:
        wait_ready(quick, 60)
        wait_ready(capped, 60)
        yield quick, capped
    finally:
        quick.stop()
        capped.stop()


@pytest.fixture
def quick(servers: tuple[Server, Server]) -> Server:
    return servers[0]


@pytest.fixture
def capped(servers: tuple[Server, Server]) -> Server:
    return servers[1]


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset after an answer ends it too)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer else 0


def test_an_oversized_header_gets_431_and_memory_does_not_follow_its_size(quick: Server) -> None:
    before = quick.rss_mb()
    answers: list[bytes] = []
    rss = [before]

    def send_16_mb() -> None:
        with quick.connect() as sock:
            try:
                sock.sendall(PARTIAL)
                for _ in range(256):
                    sock.sendall(b"a" * 65536)
            except OSError:
                pass  # the server may stop listening before all of it is sent
            rss.append(quick.rss_mb())  # with the connection still open
            answers.append(read_to_end(sock))

    threads = [threading.Thread(target=send_16_mb) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    grown = max(rss) - before
    assert [status_of(a) for a in answers] == [431] * 4, answers
    assert b'"code": "headers_too_large"' in answers[0]
    assert b"SERVICE_MAX_HEADER_BYTES" in answers[0]
    # 64 MB of headers went in; without the bound the server kept them all (and more)
    assert grown < 8, f"RSS grew {grown:.1f} MB"
    # a header just under the bound is served
    with quick.connect() as sock:
        sock.sendall(PARTIAL + b"a" * 7000 + b"\r\nConnection: close\r\n\r\n")
        assert status_of(read_to_end(sock)) == 200
    # and the refusals are counted for the operator
    metrics = HTTP.get(f"{quick.url}/metrics", timeout=WAIT).text
    line = 'seq2seq_connections_cut_total{reason="431 headers too large"} '
    (counted,) = [x for x in metrics.splitlines() if x.startswith(line)]
    assert float(counted.split()[-1]) >= 4


def test_headers_that_never_finish_are_cut_at_the_timeout(quick: Server) -> None:
    start = time.monotonic()
    idle = [quick.connect() for _ in range(5)]  # send nothing
    partial = [quick.connect() for _ in range(5)]
    for sock in partial:
        sock.sendall(PARTIAL)
    drip = quick.connect()  # a byte every 0.1 s: the deadline is for all headers, not per read
    answered = threading.Event()

    def dripping() -> None:
        try:
            drip.sendall(PARTIAL)
            while not answered.wait(0.1):
                drip.sendall(b"a")
        except OSError:
            pass

    thread = threading.Thread(target=dripping)
    thread.start()
    drip_answer = read_to_end(drip)
    answered.set()
    thread.join(WAIT)
    answers = [read_to_end(sock) for sock in idle + partial]
    elapsed = time.monotonic() - start
    assert [status_of(a) for a in answers] == [0] * 5 + [408] * 5
    assert b"SERVICE_HEADER_TIMEOUT_SECONDS" in answers[-1]
    assert status_of(drip_answer) == 408
    assert 0.9 < elapsed < 4, elapsed
    for sock in [*idle, *partial, drip]:
        sock.close()


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_a_stalled_body_gets_408_in_the_shape_of_its_protocol(quick: Server) -> None:
    started = time.monotonic()
    with quick.connect() as native, quick.connect() as v2:
        native.sendall(STALLED)
        v2.sendall(STALLED.replace(b"/predict", b"/v2/models/counter/infer"))
        answers = read_to_end(native), read_to_end(v2)
    assert [status_of(a) for a in answers] == [408, 408]
    assert answers[0].endswith(
        b'{"error": {"code": "request_timeout", "message": "request body not complete within '
        b'1 s (SERVICE_BODY_TIMEOUT_SECONDS)"}}'
    )
    assert answers[1].endswith(
        b'{"error": "request body not complete within 1 s (SERVICE_BODY_TIMEOUT_SECONDS)"}'
    )
    assert 0.9 < time.monotonic() - started < 4
    # the app logs a refused request, not an unexpected error
    deadline = time.monotonic() + WAIT
    while quick.output().count('/predict HTTP/1.1" 408') == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert '"POST /predict HTTP/1.1" 408' in quick.output()
    assert "Traceback" not in quick.output()


def read_response(sock: socket.socket) -> bytes:
    """One whole answer (with a Content-Length) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next(int(line[15:]) for line in lines if line.startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_large_body_and_a_pipelined_request_are_not_counted_as_headers(quick: Server) -> None:
    body = b'{"model": "counter", "inputs": [[1, 2, 3]]' + b" " * 30_000 + b"}"
    head = f"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    with quick.connect() as sock:
        # the body (over the 8 KiB header bound) and the start of the next request in one
        # read; the rest of its headers once the server has answered the first
        sock.sendall(head + body + b"GET /healthz HTTP/1.1\r\nHo")
        assert status_of(read_response(sock)) == 200
        sock.sendall(b"st: t\r\nConnection: close\r\n\r\n")
        assert status_of(read_to_end(sock)) == 200


def test_idle_connections_give_way_to_new_ones_at_the_cap(quick: Server) -> None:
    idle = []
    for _ in range(100):  # the cap is 16
        sock = quick.connect()
        sock.sendall(PARTIAL)
        idle.append(sock)
    with httpx.Client(base_url=quick.url, timeout=WAIT) as client:
        assert client.get("/v1/models").status_code == 200
        assert client.get("/healthz").status_code == 200
    deadline = time.monotonic() + WAIT
    while sum(map(_open, idle)) > 16 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(map(_open, idle)) <= 16
    assert not _open(idle[0])  # the oldest gave way first
    for sock in idle:
        sock.close()


def _open(sock: socket.socket) -> bool:
    if not _readable(sock):
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


def test_beyond_the_cap_requests_get_503_and_the_probes_still_answer(capped: Server) -> None:
    busy = []
    for _ in range(8):  # as many requests in progress as the cap: none can give way
        sock = capped.connect()
        sock.sendall(STALLED)
        busy.append(sock)
    with httpx.Client(base_url=capped.url, timeout=WAIT) as client:
        deadline = time.monotonic() + WAIT
        refused = client.get("/v1/models")
        while refused.status_code != 503 and time.monotonic() < deadline:
            refused = client.get("/v1/models")
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "too_many_connections"
        assert "SERVICE_MAX_CONNECTIONS" in refused.json()["error"]["message"]
        # probes: the probe band (4 connections beyond the cap), its idle ones giving way
        idle = [capped.connect() for _ in range(6)]
        for path in ("/healthz", "/readyz", "/v2/health/live", "/healthz", "/readyz"):
            started = time.monotonic()
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            assert time.monotonic() - started < 1.0
        for sock in idle + busy:
            sock.close()
        deadline = time.monotonic() + WAIT
        while client.get("/v1/models").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/v1/models").status_code == 200
