"""Over real HTTP (uvicorn in a thread, fake models): one client's upload never stalls
the event loop for the others, and header values reach the app as raw bytes (which
the test client cannot send)."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from tests import fakes
from tests.harness.http import HTTP
from tests.harness.threaded import serving_in_thread

pytestmark = pytest.mark.unit
WAIT = 30.0  # seconds: only ever reached if the server is broken
INFER = "/v2/models/counter/infer"


@contextmanager
def serving() -> Iterator[str]:
    app = create_app(Settings(access_log=False), registry=fakes.registry())
    with serving_in_thread(app) as (url, _):
        yield url


def bomb() -> bytes:
    """The issue's upload: 3,984 bytes that inflate to a 4 MB V2 infer of 2,000,000 ones."""
    tensor = {"name": "tokens", "shape": [1, 2_000_000], "datatype": "INT64"}
    body = json.dumps({"inputs": [{**tensor, "data": [1] * 2_000_000}]}, separators=(",", ":"))
    return gzip.compress(body.encode())


def test_ten_gzip_uploads_at_once_leave_healthz_fast() -> None:
    body, uploads = bomb(), 10
    assert len(body) < 5_000
    headers = {"Content-Encoding": "gzip"}
    answers: list[int] = []
    with serving() as url, httpx.Client(base_url=url, timeout=WAIT) as probe:
        assert HTTP.post(url + INFER, content=body, headers=headers).status_code == 400  # warm
        probe.get("/healthz")
        start = threading.Barrier(uploads + 1)

        def upload() -> None:
            with httpx.Client(base_url=url, timeout=WAIT) as client:
                start.wait()
                answers.append(client.post(INFER, content=body, headers=headers).status_code)

        threads = [threading.Thread(target=upload) for _ in range(uploads)]
        for t in threads:
            t.start()
        start.wait()
        latencies = []
        while any(t.is_alive() for t in threads) or len(latencies) < 3:
            began = time.perf_counter()
            assert probe.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - began)
        for t in threads:
            t.join(WAIT)
    assert answers == [400] * uploads
    assert max(latencies) < 0.1, f"slowest /healthz {max(latencies) * 1000:.0f} ms"


def raw_request(url: str, head: bytes, body: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        sock.sendall(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


@pytest.mark.parametrize("value", [b"\xb2", b"\xb9", b"12\xb3", b"1" * 5000])
def test_a_header_length_in_other_digits_is_400_naming_it(value: bytes) -> None:
    # "²".isdigit() is true and int("²") raises: this was a 500
    body = b'{"inputs":[]}'
    head = b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: t\r\n"
    head += b"Inference-Header-Content-Length: " + value + b"\r\n"
    with serving() as url:
        answer = raw_request(url, head, body)
    status, _, rest = answer.partition(b"\r\n")
    assert status.split()[1] == b"400", answer
    error = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert error.startswith("Inference-Header-Content-Length: "), error
