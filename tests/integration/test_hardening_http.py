"""Inputs that used to answer 500, unbounded work and bodies, and corrupt Redis
records, against a real server process over real HTTP."""

import os
import struct
from collections.abc import Iterator

import httpx
import pytest
import redis

from service.sessions import codec
from service.sessions.store import log_id
from tests.conftest import REDIS
from tests.harness import RedisServer, Server
from tests.harness.early import Plan
from tests.integration.conftest import EARLY

pytestmark = pytest.mark.integration

HUGE = "1" + "0" * 400  # a valid JSON number beyond float range


def field_error(r: httpx.Response, status: int, field: str) -> str:
    assert r.status_code == status, r.text
    assert r.json()["error"]["field"] == field, r.text
    message: str = r.json()["error"]["message"]
    return message


def test_inputs_that_answered_500(http: httpx.Client) -> None:
    source = {"inputs": [[20, 36, 40, 10, 34, 28]]}
    for version in ("%C2%B2", "1" * 5000):  # "²"; more digits than int() takes
        r = http.post(f"/v1/models/reverse/versions/{version}/predict", json=source)
        assert "available versions: 1" in field_error(r, 404, "version")
    for version in ("²", "1" * 5000):
        r = http.post("/predict", json={**source, "model": "reverse", "version": version})
        field_error(r, 404, "version")
    zeros = ",".join(["0"] * 19)
    state = f"[[{HUGE},{zeros}],[0,{zeros}]]"
    r = http.post("/v1/sessions", content=f'{{"model": "memory", "state": {state}}}')
    assert "finite float32" in field_error(r, 422, "state[0][0]")
    sid = http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]
    r = http.put(f"/v1/sessions/{sid}/state", content=f'{{"state": {state}}}')
    field_error(r, 422, "state[0][0]")


def test_work_per_request_is_bounded_and_documented_uses_fit(http: httpx.Client) -> None:
    sources = [[20, 36, 40, 10, 34, 28]] * 256
    # the request that produced a 139 MB answer: refused before any compute
    r = http.post(
        "/predict", json={"inputs": sources, "max_steps": 512, "return_probabilities": True}
    )
    msg = field_error(r, 422, "inputs")
    assert "132,608 model steps" in msg and "SERVICE_MAX_STEPS_PER_REQUEST" in msg
    r = http.post(
        "/predict", json={"inputs": sources, "max_steps": 64, "return_probabilities": True}
    )
    assert "SERVICE_MAX_PROBABILITIES_PER_REQUEST" in field_error(r, 422, "return_probabilities")
    # what the README documents still works: a full batch at the default steps with
    # probabilities, one sequence at the most steps, a session fed its longest input
    full = http.post("/predict", json={"inputs": sources, "return_probabilities": True})
    assert full.status_code == 200 and full.json()["outputs"][0] == [40, 36, 20]
    longest = http.post(
        "/predict", json={"inputs": sources[:1], "max_steps": 512, "return_probabilities": True}
    )
    assert longest.status_code == 200 and len(longest.json()["probabilities"][0]) == 512
    sid = http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]
    r = http.post(
        f"/v1/sessions/{sid}/step", json={"inputs": [3] * 1024, "return_probabilities": True}
    )
    assert r.status_code == 200 and r.json()["steps"] == 1024


def test_bodies_over_the_limit_are_413(http: httpx.Client) -> None:
    body = b'{"inputs": [[' + b"1," * 2_500_000 + b"1]]}"  # 5 MB, default limit 4 MiB
    r = http.post("/predict", content=body)
    assert "(SERVICE_MAX_BODY_BYTES)" in field_error(r, 413, "body")

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    try:
        r = http.post("/predict", content=chunks())
    except httpx.TransportError:
        pytest.fail("the server should answer 413, not drop the connection")
    assert "received so far exceed" in field_error(r, 413, "body")
    assert http.post("/predict", json={"inputs": [[1, 2, 3]]}).status_code == 200


PREFIX = f"corrupt{os.getpid()}:"
EARLY.plan(
    "corruptible_server",
    Plan(
        lambda: {
            "SERVICE_SESSION_BACKEND": "redis",
            "SERVICE_REDIS_URL": REDIS.get().url,
            "SERVICE_REDIS_PREFIX": PREFIX,
        }
    ),
)


@pytest.fixture
def corruptible_server() -> Iterator[Server]:
    """A server of its own on the session's Redis, under a key prefix of its own."""
    try:
        yield EARLY.server("corruptible_server")
    finally:
        EARLY.release("corruptible_server")


@pytest.fixture
def redis_served(
    redis_server: RedisServer, corruptible_server: Server
) -> Iterator[tuple[httpx.Client, redis.Redis, str, Server]]:
    with (
        httpx.Client(base_url=corruptible_server.url, timeout=30) as http,
        redis.Redis.from_url(redis_server.url) as client,
    ):
        yield http, client, PREFIX, corruptible_server


def test_corrupt_redis_records_answer_410_and_nothing_else_breaks(
    redis_served: tuple[httpx.Client, redis.Redis, str, Server],
) -> None:
    http, client, prefix, server = redis_served
    healthy = http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]

    def damaged(write: str) -> str:
        sid = str(http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"])
        key = f"{prefix}s:{sid}"
        record = client.get(key)
        assert isinstance(record, bytes)
        if write == "foreign":
            client.set(key, b"hello, not a session")
        elif write == "truncated":
            client.set(key, record[:-7])
        elif write == "other shape":  # a whole, readable record: one state of 5 floats
            name_end = record.index(b"memory") + len(b"memory")
            other = record[:name_end] + struct.pack("<BBI", 1, 1, 5) + bytes(20)
            assert codec.decode(sid, other).states[0].shape == (5,)
            client.set(key, other)
        elif write == "hash":
            client.delete(key)
            client.hset(key, "a", "b")
        return sid

    for write in ("foreign", "truncated", "other shape", "hash"):
        sid = damaged(write)
        for method, path, body in [
            ("GET", "", None),
            ("POST", "/step", {"inputs": [3]}),
            ("PUT", "/state", {"state": [[0.0] * 20, [0.0] * 20]}),
            ("POST", "/reset", None),
        ]:
            r = http.request(method, f"/v1/sessions/{sid}{path}", json=body)
            msg = field_error(r, 410, "session_id")
            assert r.json()["error"]["code"] == "session_corrupt" and sid in msg, write
        r = http.post(f"/v1/sessions/{healthy}/step", json={"inputs": [3]})
        assert r.status_code == 200, write
        log = server.output()
        assert f"session {log_id(sid)}: stored record cannot be used" in log, write
        assert sid not in log  # a session id is a secret: the log has its hash
        assert http.delete(f"/v1/sessions/{sid}").status_code == 204
        assert http.get(f"/v1/sessions/{sid}").status_code == 404
    assert http.get("/readyz").json()["status"] == "ready"
