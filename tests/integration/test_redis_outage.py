"""Two replicas on a Redis of their own, with a cap of two sessions between them: Redis
stopped and started again under one of them, and the cap shared by both. Started once
(early, tests/harness/early.py); each test deletes what it created, so the next one
starts from an empty store."""

import time
from collections.abc import Iterator

import pytest

from tests.conftest import SharedRedis
from tests.harness import RedisServer, Replica, redis_env
from tests.harness.early import Plan
from tests.harness.http import HTTP
from tests.harness.replicas import start_all, stop_all
from tests.integration.conftest import EARLY
from tests.integration.test_redis_replicas import group, post

pytestmark = pytest.mark.integration

OWN_REDIS = SharedRedis()
CAPPED = ["capped-0", "capped-1"]
for name in CAPPED:
    EARLY.plan(
        name, Plan(lambda: redis_env(OWN_REDIS.get(), SERVICE_MAX_SESSIONS="2"), fixture="capped")
    )


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    try:
        yield OWN_REDIS.get()
    finally:
        OWN_REDIS.close()


@pytest.fixture(scope="module")
def capped(own_redis: RedisServer) -> Iterator[list[Replica]]:
    """Two replicas whose sessions count against one cap of 2."""
    replicas = group(CAPPED)
    try:
        yield replicas
    finally:
        stop_all(replicas)
        for name in CAPPED:
            EARLY.release(name)


def store_ready(url: str) -> None:
    """Until /readyz says the session store answers (after Redis came back)."""
    deadline = time.monotonic() + 20
    while HTTP.get(f"{url}/readyz", timeout=30).json()["status"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_redis_outage_and_recovery(capped: list[Replica], own_redis: RedisServer) -> None:
    redis = own_redis
    start_all(capped)
    replica = capped[0]
    url = replica.url
    store_ready(url)
    try:
        sid = post(url, "/v1/sessions", {"model": "memory"})["session_id"]
        redis.stop()
        r = HTTP.post(f"{url}/v1/sessions/{sid}/step", json={"inputs": [3]}, timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "session_store_unavailable"
        assert "127.0.0.1" not in r.text and str(redis.port) not in r.text  # no address
        assert (
            HTTP.post(f"{url}/v1/sessions", json={"model": "memory"}, timeout=30).status_code == 503
        )
        p = HTTP.post(f"{url}/predict", json={"inputs": [[20, 36, 40, 10, 34, 28]]}, timeout=30)
        assert p.status_code == 200 and p.json()["outputs"] == [[40, 36, 20]]
        ready = HTTP.get(f"{url}/readyz", timeout=30).json()
        assert ready["status"] == "degraded" and "unavailable" in ready["detail"]["session_store"]
        assert str(redis.port) not in str(ready)
        assert str(redis.port) in replica.log()  # the detail is in the log
        redis.start()  # same port, empty (no persistence in this test)
        store_ready(url)
        sid = post(url, "/v1/sessions", {"model": "memory"})["session_id"]
        assert post(url, f"/v1/sessions/{sid}/step", {"inputs": [3, 0]})["outputs"] == [0, 1]
        assert HTTP.delete(f"{url}/v1/sessions/{sid}").status_code == 204
    finally:
        if redis.process is None:
            redis.start()


def test_cap_is_shared_by_replicas(capped: list[Replica]) -> None:
    start_all(capped)
    a, b = capped
    for r in capped:
        store_ready(r.url)  # each one's connections to Redis, if another test restarted it
    created: list[tuple[str, str]] = []
    try:
        for r in capped:
            created.append((r.url, post(r.url, "/v1/sessions", {"model": "memory"})["session_id"]))
        r = HTTP.post(f"{a.url}/v1/sessions", json={"model": "memory"}, timeout=30)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    finally:
        for url, sid in created:
            HTTP.delete(f"{url}/v1/sessions/{sid}", timeout=30)
