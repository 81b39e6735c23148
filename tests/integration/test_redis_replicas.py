"""Several server processes sharing one real redis-server.

Two replicas, started once (early, tests/harness/early.py): `pair`, on the session's
Redis, which every test shares with sessions of its own. A test that kills or stops a
replica leaves it so; the next test that asks for the pair gets it started again. (Two
more on a Redis of their own, with a cap: test_redis_outage.py.)
"""

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import REDIS
from tests.floats import close
from tests.harness import RedisServer, Replica, redis_env
from tests.harness.early import Plan
from tests.harness.http import HTTP
from tests.harness.replicas import start_all, stop_all
from tests.integration.conftest import EARLY

pytestmark = pytest.mark.integration


PAIR = ["pair-0", "pair-1"]
for name in PAIR:
    EARLY.plan(name, Plan(lambda: redis_env(REDIS.get()), fixture="pair"))


def group(names: list[str]) -> list[Replica]:
    """The planned servers `names` (started early, or now and together) as replicas."""
    return [Replica(p.env, server=p.server) for p in EARLY.prepared_all(names)]


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer) -> Iterator[list[Replica]]:
    replicas = group(PAIR)
    try:
        yield replicas
    finally:
        stop_all(replicas)
        for name in PAIR:
            EARLY.release(name)


@pytest.fixture
def replicas(pair: list[Replica]) -> list[Replica]:
    """Both replicas of `pair`, running (started again if a test stopped one)."""
    start_all(pair)
    return pair


def post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = HTTP.post(f"{url}{path}", json=body, timeout=60)
    assert r.status_code in (200, 201), r.text
    result: dict[str, Any] = r.json()
    return result


def state(url: str, sid: str) -> list[np.ndarray]:
    r = HTTP.get(f"{url}/v1/sessions/{sid}?include_state=true", timeout=30)
    assert r.status_code == 200, r.text
    return [np.asarray(t) for t in r.json()["state"]]


def replay(url: str, inputs: list[int]) -> tuple[list[int], list[np.ndarray]]:
    sid = post(url, "/v1/sessions", {"model": "memory"})["session_id"]
    outputs = post(url, f"/v1/sessions/{sid}/step", {"inputs": inputs})["outputs"]
    return outputs, state(url, sid)


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(close(x, y) for x, y in zip(a, b, strict=True))


def test_created_on_a_stepped_on_b_read_on_a(replicas: list[Replica]) -> None:
    a, b = replicas
    sid = post(a.url, "/v1/sessions", {"model": "memory"})["session_id"]
    outputs = [
        post(b.url if i % 2 else a.url, f"/v1/sessions/{sid}/step", {"inputs": [v]})["outputs"][0]
        for i, v in enumerate([3, 0, 1, 2])
    ]
    assert outputs == [0, 1, 2, 3]
    info = HTTP.get(f"{a.url}/v1/sessions/{sid}").json()
    assert info["steps"] == 4
    HTTP.post(f"{b.url}/v1/sessions/{sid}/reset")
    second = post(a.url, f"/v1/sessions/{sid}/step", {"inputs": [4, 0, 1, 2]})["outputs"]
    assert second == [0, 1, 2, 4]
    assert HTTP.delete(f"{b.url}/v1/sessions/{sid}").status_code == 204
    assert HTTP.get(f"{a.url}/v1/sessions/{sid}").status_code == 404


def test_a_v2_sequence_alternates_between_replicas(replicas: list[Replica]) -> None:
    """Triton's sequence extension keeps its state in Redis: every request of one
    sequence may land on another replica."""
    a, b = replicas

    def infer(url: str, value: int, **parameters: Any) -> list[int]:
        body = {
            "inputs": [{"name": "tokens", "shape": [1, 1], "datatype": "INT64", "data": [value]}],
            "parameters": {"sequence_id": 77, **parameters},
        }
        answer = HTTP.post(f"{url}/v2/models/memory/infer", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        data: list[int] = answer.json()["outputs"][0]["data"]
        return data

    outputs = infer(a.url, 3, sequence_start=True)
    outputs += infer(b.url, 0) + infer(a.url, 1) + infer(b.url, 2, sequence_end=True)
    assert outputs == [0, 1, 2, 3]
    ended = HTTP.post(
        f"{a.url}/v2/models/memory/infer",
        json={
            "inputs": [{"name": "tokens", "shape": [1, 1], "datatype": "INT64", "data": [1]}],
            "parameters": {"sequence_id": 77},
        },
    )
    assert ended.status_code == 400 and "sequence_start" in ended.json()["error"]


def test_200_concurrent_steps_through_two_processes(replicas: list[Replica]) -> None:
    a, b = replicas
    sid = post(a.url, "/v1/sessions", {"model": "memory"})["session_id"]
    values = np.random.default_rng(9).integers(0, 5, size=200).tolist()

    def step(i: int) -> tuple[int, int, int]:
        url = (a if i % 2 else b).url
        r = post(url, f"/v1/sessions/{sid}/step", {"inputs": [values[i]]})
        return r["steps"], values[i], r["outputs"][0]

    with ThreadPoolExecutor(32) as pool:
        answers = sorted(pool.map(step, range(200)))
    assert [s for s, _, _ in answers] == list(range(1, 201))  # each step its own place
    assert HTTP.get(f"{b.url}/v1/sessions/{sid}").json()["steps"] == 200
    outputs, final = replay(a.url, [v for _, v, _ in answers])
    assert outputs == [o for _, _, o in answers]
    assert same(state(b.url, sid), final)


def keyed_step(url: str, sid: str, key: str, value: int) -> httpx.Response:
    return HTTP.post(
        f"{url}/v1/sessions/{sid}/step",
        json={"inputs": [value]},
        headers={"Idempotency-Key": key},
        timeout=60,
    )


def test_200_concurrent_retries_of_one_keyed_step_apply_it_once(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    sid = post(a.url, "/v1/sessions", {"model": "memory"})["session_id"]
    post(a.url, f"/v1/sessions/{sid}/step", {"inputs": [3, 0]})

    def retry(i: int) -> httpx.Response:
        return keyed_step((a if i % 2 else b).url, sid, "the-one-step", 1)

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(retry, range(200)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.content for r in answers}) == 1  # every retry got the first answer
    assert answers[0].json()["steps"] == 3
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 199
    assert HTTP.get(f"{b.url}/v1/sessions/{sid}").json()["steps"] == 3
    assert same(state(a.url, sid), replay(a.url, [3, 0, 1])[1])


def test_a_step_whose_client_went_away_is_retried_without_applying_twice(
    replicas: list[Replica],
) -> None:
    a, b = replicas
    sid = post(a.url, "/v1/sessions", {"model": "memory"})["session_id"]
    body = b'{"inputs": [4]}'
    request = (
        f"POST /v1/sessions/{sid}/step HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nIdempotency-Key: lost-answer\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", a.port)) as conn:
        conn.sendall(request)  # and hang up without reading the answer
    deadline = time.monotonic() + 30
    while HTTP.get(f"{a.url}/v1/sessions/{sid}").json()["steps"] == 0:
        assert time.monotonic() < deadline, "the step was never applied"
        time.sleep(0.05)
    r = keyed_step(b.url, sid, "lost-answer", 4)  # the client retries, on another replica
    assert r.status_code == 200 and r.headers["idempotent-replayed"] == "true"
    assert r.json() == {"session_id": sid, "outputs": [0], "steps": 1}
    assert HTTP.get(f"{a.url}/v1/sessions/{sid}").json()["steps"] == 1


# the last two: one kills a replica of `pair`, the other stops them all (the next test
# that asked for `pair` would wait for them to start again)


def test_killing_a_replica_loses_nothing_acknowledged(replicas: list[Replica]) -> None:
    a, b = replicas
    sid = post(b.url, "/v1/sessions", {"model": "memory"})["session_id"]
    acknowledged: list[int] = []
    for i, v in enumerate([3, 0, 1, 2, 4, 0]):
        post((a if i % 2 else b).url, f"/v1/sessions/{sid}/step", {"inputs": [v]})
        acknowledged.append(v)
    a.kill()  # mid-stream, without a clean shutdown
    for v in [1, 2]:
        post(b.url, f"/v1/sessions/{sid}/step", {"inputs": [v]})
        acknowledged.append(v)
    assert HTTP.get(f"{b.url}/v1/sessions/{sid}").json()["steps"] == len(acknowledged)
    assert same(state(b.url, sid), replay(b.url, acknowledged)[1])


def test_restarting_every_server_keeps_sessions(pair: list[Replica]) -> None:
    first = pair[1]
    start_all([first])  # running unless a test stopped it
    sid = post(first.url, "/v1/sessions", {"model": "memory"})["session_id"]
    post(first.url, f"/v1/sessions/{sid}/step", {"inputs": [4, 0, 1]})
    before = state(first.url, sid)
    stop_all(pair)  # every server
    second = pair[0]
    start_all([second])  # a new process
    assert same(state(second.url, sid), before)
    r = post(second.url, f"/v1/sessions/{sid}/step", {"inputs": [2]})
    assert r["outputs"] == [4] and r["steps"] == 4
