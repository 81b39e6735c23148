"""Sessions on a real Redis Cluster (six nodes: three masters, three replicas).

The store contract runs on it too (tests/contract). Here: sessions spread over the
masters; two server processes sharing the cluster (`cluster-pair`, started early), as
on one Redis (the same tests as test_redis_replicas.py); and a master killed under load.
"""

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
import redis.asyncio as redis

import tests.integration.test_redis_replicas as single
from service.errors import Conflict, StoreUnavailable
from service.sessions.redis import RedisSessionStore
from service.sessions.store import StoredSession, new_session_id
from tests.conftest import CLUSTER
from tests.harness import Replica
from tests.harness.early import Plan
from tests.harness.redis_cluster import RedisCluster
from tests.harness.replicas import start_all, stop_all
from tests.integration.conftest import EARLY

pytestmark = pytest.mark.integration

PAIR = ["cluster-0", "cluster-1"]
for name in PAIR:
    EARLY.plan(
        name,
        Plan(
            lambda: {
                "SERVICE_SESSION_BACKEND": "redis-cluster",
                "SERVICE_REDIS_URL": CLUSTER.get().url,
                "SERVICE_REDIS_WAIT_REPLICAS": "1",
            },
            fixture="cluster_pair",
        ),
    )


@pytest.fixture(scope="module")
def cluster_pair(redis_cluster: RedisCluster) -> Iterator[list[Replica]]:
    replicas = single.group(PAIR)
    try:
        start_all(replicas)
        yield replicas
    finally:
        stop_all(replicas)
        for name in PAIR:
            EARLY.release(name)


def session() -> StoredSession:
    state = np.zeros(128, np.float32)
    return StoredSession(new_session_id(), "reverse", 1, 0, (state, state), 0, time.time())


async def test_sessions_spread_over_the_three_masters(redis_cluster: RedisCluster) -> None:
    prefix = f"t{secrets.token_hex(4)}:"
    store = RedisSessionStore(redis_cluster.url, 30, 100_000, prefix=prefix, cluster=True)
    try:
        for _ in range(300):
            await store.create(session())
        assert await store.count() == 300
    finally:
        await store.close()
    per_master = Counter[int]()
    for master in redis_cluster.masters():
        client = redis.Redis(port=master.port)
        async for _ in client.scan_iter(match=f"{prefix}*:s:*", count=1000):
            per_master[master.port] += 1
        await client.aclose()
    print(f"\nsessions per master: {sorted(per_master.values())}")
    assert sum(per_master.values()) == 300
    assert len(per_master) == 3 and min(per_master.values()) >= 50  # 100 each on average


def test_created_on_a_stepped_on_b_read_on_a(cluster_pair: list[Replica]) -> None:
    single.test_created_on_a_stepped_on_b_read_on_a(cluster_pair)


def test_a_v2_sequence_alternates_between_replicas(cluster_pair: list[Replica]) -> None:
    single.test_a_v2_sequence_alternates_between_replicas(cluster_pair)


def test_200_concurrent_steps_through_two_processes(cluster_pair: list[Replica]) -> None:
    single.test_200_concurrent_steps_through_two_processes(cluster_pair)


def test_200_concurrent_retries_of_one_keyed_step_apply_it_once(
    cluster_pair: list[Replica],
) -> None:
    single.test_200_concurrent_retries_of_one_keyed_step_apply_it_once(cluster_pair)


class Load:
    """Workers adding one step at a time to sessions (load, +1, save under the lock),
    with what each session's acknowledged saves and refused ones were."""

    def __init__(self, store: RedisSessionStore, ids: list[str]):
        self.store = store
        self.ids = ids
        self.acknowledged = dict.fromkeys(ids, 0)  # steps of the last acknowledged save
        self.uncertain = Counter[str]()  # saves refused with 503 (applied or not)
        self.refused: list[tuple[float, str]] = []  # (when, id): any 503
        self.served: list[tuple[float, str]] = []  # (when, id): acknowledged saves
        self.began: dict[float, float] = {}  # an acknowledged save's when: when it began
        self.stop = asyncio.Event()

    async def worker(self, offset: int) -> None:
        i = offset
        while not self.stop.is_set():
            sid = self.ids[i % len(self.ids)]
            i += 7
            saving, began = False, time.monotonic()
            try:
                async with self.store.lock(sid):
                    loaded = await self.store.get(sid)
                    assert loaded is not None, "a session was lost"
                    saving = True
                    saved = await self.store.save(loaded.evolve(steps=loaded.steps + 1))
                self.acknowledged[sid] = saved.steps
                self.served.append((done := time.monotonic(), sid))
                self.began[done] = began
            except StoreUnavailable:
                self.refused.append((time.monotonic(), sid))
                self.uncertain[sid] += saving
                await asyncio.sleep(0.01)
            except Conflict:  # after a refused save that was applied after all
                pass


async def test_a_killed_master_stops_only_its_sessions_until_its_replica_takes_over() -> None:
    """With SERVICE_REDIS_WAIT_REPLICAS=1 nothing acknowledged is lost: a master is
    SIGKILLed under load; its sessions answer 503 (never anything else) until its replica
    is promoted and the killed node, started again, follows it as the shard's new replica
    (until then no replica can confirm a write); the other masters' sessions are served
    throughout; every acknowledged step is there after."""
    cluster = RedisCluster(node_timeout_ms=500).start()  # its own: a quicker failover
    # a session lock taken on the killed master is on its replica too, and stays until
    # it expires (its holder's unlock failed): 2 s here (SERVICE_REDIS_LOCK_TTL_SECONDS)
    store = RedisSessionStore(
        cluster.url, 120, 100_000, cluster=True, wait_replicas=1, lock_ttl=2.0
    )
    try:
        ids = [(await store.create(session())).id for _ in range(48)]
        load = Load(store, ids)
        workers = [asyncio.create_task(load.worker(k)) for k in range(12)]
        while len(load.served) < 200:
            await asyncio.sleep(0.01)
        victim = cluster.master_of(store.keys.session(ids[0]))
        on_victim = {sid for sid in ids if cluster.master_of(store.keys.session(sid)) is victim}
        killed = time.monotonic()
        cluster.kill_master(victim)
        while not any(t > killed and sid in on_victim for t, sid in load.refused):
            await asyncio.sleep(0.01)
        await asyncio.to_thread(cluster.wait_promoted, victim)
        promoted = time.monotonic()
        victim.start()  # as an orchestrator restarts it: it rejoins as the replica
        await asyncio.to_thread(cluster.wait_ok)
        rejoined = time.monotonic()
        while not any(load.began[t] > rejoined and sid in on_victim for t, sid in load.served):
            await asyncio.sleep(0.01)
        down = next(t for t, sid in load.refused if t > killed and sid in on_victim)
        # (a save that began before the kill may be acknowledged after it)
        back = next(t for t, sid in load.served if load.began[t] > down and sid in on_victim)
        load.stop.set()
        await asyncio.gather(*workers)
        others = [sid for t, sid in load.served if down < t < back and sid not in on_victim]
        lost = []
        for sid in ids:
            stored = await store.get(sid)
            assert stored is not None
            if stored.steps < load.acknowledged[sid]:
                lost.append(sid)
            assert stored.steps <= load.acknowledged[sid] + load.uncertain[sid]
        print(
            f"\nkill -> promoted {promoted - killed:.2f} s, -> rejoined {rejoined - killed:.2f} s, "
            f"its sessions refused from {down - killed:.2f} s, served again from "
            f"{back - killed:.2f} s; {len(on_victim)} of 48 sessions on it; "
            f"{len(others)} saves on the other masters meanwhile; "
            f"{len(load.refused)} answers 503; {sum(load.acknowledged.values())} steps "
            f"acknowledged, {len(lost)} sessions lost any"
        )
        assert lost == []
        assert len(others) > 100  # the other shards kept serving
        assert all(sid in on_victim for t, sid in load.refused if t < promoted)
    finally:
        await store.close()
        cluster.close()
