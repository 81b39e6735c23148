"""One contract, every store: the in-process store, a real redis-server and a real
Redis Cluster (six nodes: three masters, three replicas)."""

import asyncio
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from service.errors import CapacityExceeded, Conflict, StoreUnavailable
from service.observability.metrics import Metrics
from service.sessions.instrumented import InstrumentedStore
from service.sessions.memory import MemorySessionStore
from service.sessions.redis import RedisSessionStore
from service.sessions.store import Replay, SessionStore, StoredSession, new_session_id
from tests.harness import RedisServer

pytestmark = pytest.mark.contract

Factory = Callable[..., SessionStore]


# "instrumented": the metrics wrapper the dataplane uses, around the in-process store
@pytest.fixture(params=["memory", "redis", "redis-cluster", "instrumented"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    made: list[SessionStore] = []

    def factory(ttl: float = 30.0, cap: int = 100, **options: Any) -> SessionStore:
        store: SessionStore
        if request.param == "memory":
            store = MemorySessionStore(ttl, cap, **options)
        elif request.param == "instrumented":
            store = InstrumentedStore(MemorySessionStore(ttl, cap, **options), Metrics())
        else:
            cluster = request.param == "redis-cluster"
            fixture = "redis_cluster" if cluster else "redis_server"
            url = request.getfixturevalue(fixture).url
            prefix = f"t{secrets.token_hex(4)}:"  # every test its own key space
            store = RedisSessionStore(url, ttl, cap, prefix=prefix, cluster=cluster, **options)
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.close()


def session(model: str = "reverse") -> StoredSession:
    rng = np.random.default_rng()
    return StoredSession(
        id=new_session_id(),
        model=model,
        version=3,
        steps=5,
        states=(
            rng.normal(size=128).astype(np.float32),
            rng.normal(size=(2, 3)).astype(np.float32),
        ),
        next_token=7,
        created_at=time.time(),
    )


async def test_round_trip_is_exact(make: Factory) -> None:
    store = make()
    original = session()
    created = await store.create(original)
    got = await store.get(original.id)
    assert got is not None
    assert (got.model, got.version, got.steps, got.next_token, got.revision) == (
        "reverse",
        3,
        5,
        7,
        0,
    )
    assert got.created_at == pytest.approx(original.created_at)
    for a, b in zip(got.states, original.states, strict=True):
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_array_equal(a, b)  # exact by construction: stored bytes
    assert got.expires_at >= created.expires_at - 0.01
    assert await store.get("no-such-id") is None


async def test_save_bumps_revision_and_replaces(make: Factory) -> None:
    store = make()
    s = await store.create(session())
    loaded = await store.get(s.id)
    assert loaded is not None
    saved = await store.save(StoredSession(**{**loaded.__dict__, "steps": 9, "next_token": None}))
    assert saved.revision == loaded.revision + 1
    again = await store.get(s.id)
    assert again is not None and again.steps == 9 and again.next_token is None
    assert again.revision == saved.revision


async def test_delete_and_count(make: Factory) -> None:
    store = make()
    ids = [(await store.create(session())).id for _ in range(3)]
    assert await store.count() == 3
    assert await store.delete(ids[0]) is True
    assert await store.delete(ids[0]) is False
    assert await store.get(ids[0]) is None
    assert await store.count() == 2


# TTL tests on real time (Redis expires keys by its own clock): every "still alive"
# check has 1.8 s of slack (a read every 0.2 s, TTL 2 s), so a loaded machine cannot fail
# them, and every "expired" check waits until the TTL has passed since the session was
# last touched, so it holds by construction.
TTL = 2.0


async def wait_past(deadline: float) -> None:
    """Until monotonic time `deadline` (plus a little for clock granularity)."""
    await asyncio.sleep(max(0.0, deadline - time.monotonic()) + 0.05)


@pytest.mark.slow  # waits out the TTL
async def test_idle_sessions_expire_and_access_refreshes(make: Factory) -> None:
    store = make(ttl=TTL)
    idle = (await store.create(session())).id
    idle_due = time.monotonic() + TTL  # idle's last touch was before this minus TTL
    kept = (await store.create(session())).id
    reads = 0
    while time.monotonic() < idle_due + 0.05:  # read every 0.2 s: 1.8 s of slack
        await asyncio.sleep(0.2)
        assert await store.get(kept) is not None
        reads += 1
    assert reads >= 5
    assert await store.get(idle) is None
    assert await store.count() == 1


@pytest.mark.slow  # waits out the TTL
async def test_cap_refuses_with_retry_after_and_purges_expired(make: Factory) -> None:
    store = make(ttl=TTL, cap=2)
    await store.create(session())
    await store.create(session())
    both_due = time.monotonic() + TTL
    with pytest.raises(CapacityExceeded) as info:
        await store.create(session())
    assert info.value.retry_after is not None
    assert 1 <= info.value.retry_after <= TTL + 1
    await wait_past(both_due)  # both expire: room again
    await store.create(session())
    assert await store.count() == 1


async def test_lock_serialises_load_compute_save(make: Factory) -> None:
    store = make()
    s = await store.create(session())

    async def increment() -> None:
        async with store.lock(s.id):
            loaded = await store.get(s.id)
            assert loaded is not None
            await asyncio.sleep(0.002)  # a compute step
            await store.save(StoredSession(**{**loaded.__dict__, "steps": loaded.steps + 1}))

    await asyncio.gather(*[increment() for _ in range(30)])
    final = await store.get(s.id)
    assert final is not None and final.steps == 5 + 30 and final.revision == 30


async def test_health_reports_ok(make: Factory) -> None:
    assert await make().health() is None


async def test_redis_save_is_compare_and_set(redis_server: RedisServer) -> None:
    """Two saves from the same loaded revision: the second is refused, not applied."""
    store = RedisSessionStore(redis_server.url, 30, 10, prefix=f"t{secrets.token_hex(4)}:")
    try:
        s = await store.create(session())
        a, b = await store.get(s.id), await store.get(s.id)
        assert a is not None and b is not None
        await store.save(StoredSession(**{**a.__dict__, "steps": 100}))
        with pytest.raises(Conflict):
            await store.save(StoredSession(**{**b.__dict__, "steps": 200}))
        final = await store.get(s.id)
        assert final is not None and final.steps == 100
    finally:
        await store.close()


async def test_redis_bytes_per_session(redis_server: RedisServer) -> None:
    """A reverse session (2 x 128 float32 = 1,024 bytes) costs <= 1.5x that in Redis."""
    import redis.asyncio as redis

    prefix = f"t{secrets.token_hex(4)}:"
    store = RedisSessionStore(redis_server.url, 30, 100_000, prefix=prefix)
    client = redis.Redis.from_url(redis_server.url)
    try:
        s = StoredSession(
            id=new_session_id(),
            model="reverse",
            version=1,
            steps=3,
            states=(np.ones(128, np.float32), np.ones(128, np.float32)),
            next_token=0,
            created_at=time.time(),
        )
        indexes = store.keys.indexes()

        async def index_bytes() -> int:
            return sum([await client.memory_usage(name) or 0 for name in indexes])

        s = await store.create(s)
        value = await client.memory_usage(store.keys.session(s.id))
        before = await index_bytes()
        for _ in range(999):
            await store.create(StoredSession(**{**s.__dict__, "id": new_session_id()}))
        index_per_session = (await index_bytes() - before) / 999
        total = value + index_per_session
        print(
            f"redis bytes per reverse session: {value} (value) + {index_per_session:.0f} "
            f"(index) = {total:.0f}; raw state 1024"
        )
        assert total <= 1.5 * 1024
    finally:
        await client.aclose()
        await store.close()


async def test_attention_memory_is_kept_beside_the_states(make: Factory) -> None:
    """Sessions of attention models carry the encoded source; a save that changes the
    states keeps it (Redis: one compact binary record)."""
    from dataclasses import replace

    store = make()
    memory = np.random.default_rng(5).normal(size=(32, 64)).astype(np.float32)
    original = replace(session("dates"), memory=memory)
    await store.create(original)
    got = await store.get(original.id)
    assert got is not None and got.memory is not None
    np.testing.assert_array_equal(got.memory, memory)  # exact by construction: stored bytes
    await store.save(replace(got, states=tuple(s + 1 for s in got.states), steps=6))
    again = await store.get(original.id)
    assert again is not None and again.memory is not None and again.steps == 6
    np.testing.assert_array_equal(again.memory, memory)


def answer(body: bytes, fingerprint: bytes = b"f" * 32) -> Replay:
    return Replay(fingerprint, body)


async def test_an_answer_is_kept_with_its_change_and_deleted_with_the_session(
    make: Factory,
) -> None:
    store = make(keys_per_session=2)
    s = await store.create(session())
    assert await store.replay(s.id, "k1") is None
    saved = await store.save(replace(s, steps=6), ("k1", answer(b'{"steps":6}')))
    assert await store.replay(s.id, "k1") == answer(b'{"steps":6}')
    got = await store.get(s.id)
    assert got is not None and got.steps == 6 and got.revision == saved.revision
    await store.save(replace(saved, steps=7), ("k2", answer(b"2")))
    assert await store.replay(s.id, "k1") is not None
    await store.save(replace(saved, revision=saved.revision + 1), ("k3", answer(b"3")))
    # only the last 2 are kept
    assert [await store.replay(s.id, k) for k in ("k1", "k2", "k3")] == [
        None,
        answer(b"2"),
        answer(b"3"),
    ]
    assert await store.delete(s.id)
    assert await store.replay(s.id, "k3") is None


async def test_a_refused_save_keeps_no_answer(redis_server: RedisServer) -> None:
    store = RedisSessionStore(redis_server.url, 30, 10, prefix=f"t{secrets.token_hex(4)}:")
    s = await store.create(session())
    await store.save(s)
    with pytest.raises(Conflict):  # saved from a stale revision: not applied
        await store.save(s, ("k", answer(b"x")))
    assert await store.replay(s.id, "k") is None
    await store.close()


async def test_sessions_per_owner_are_capped(make: Factory) -> None:
    store = make(max_per_owner=2)
    a1 = await store.create(replace(session(), owner="a"))
    await store.create(replace(session(), owner="a"))
    with pytest.raises(CapacityExceeded) as refused:
        await store.create(replace(session(), owner="a"))
    assert "SERVICE_MAX_SESSIONS_PER_KEY" in refused.value.message
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    await store.create(replace(session(), owner="b"))  # other keys are not affected
    assert await store.delete(a1.id, "a")
    await store.create(replace(session(), owner="a"))  # room again
    assert await store.count() == 3


async def test_waiting_for_a_busy_session_is_bounded(make: Factory) -> None:
    store = make(lock_wait=0.2)
    s = await store.create(session())
    held, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with store.lock(s.id):
            held.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await held.wait()
    with pytest.raises(StoreUnavailable) as busy:
        async with store.lock(s.id):
            pass
    assert busy.value.retry_after == 1
    release.set()
    await task
    async with store.lock(s.id):  # free again
        pass


async def test_redis_lock_is_renewed_while_held(redis_server: RedisServer) -> None:
    """Held longer than its expiry, the lock still keeps another replica out."""
    prefix = f"t{secrets.token_hex(4)}:"
    one = RedisSessionStore(redis_server.url, 30, 10, prefix=prefix, lock_ttl=0.2)
    two = RedisSessionStore(redis_server.url, 30, 10, prefix=prefix, lock_wait=0.9)
    started = time.monotonic()
    async with one.lock("sid"):
        with pytest.raises(StoreUnavailable):  # 0.9 s of waiting: 4x the lock's expiry
            async with two.lock("sid"):
                pass
        assert time.monotonic() - started > 0.8
    async with two.lock("sid"):
        pass
    await one.close()
    await two.close()


async def test_redis_expiry_uses_redis_clock_not_the_replicas(redis_server: RedisServer) -> None:
    """A replica whose clock is a day ahead does not purge the others' live sessions
    from the cap index (nor would one a day behind keep expired ones)."""
    prefix = f"t{secrets.token_hex(4)}:"
    normal = RedisSessionStore(redis_server.url, 30, 2, prefix=prefix)
    ahead = RedisSessionStore(
        redis_server.url, 30, 2, prefix=prefix, clock=lambda: time.time() + 86_400
    )
    await normal.create(session())
    await normal.create(session())
    with pytest.raises(CapacityExceeded):
        await ahead.create(session())
    assert await ahead.count() == 2
    await normal.close()
    await ahead.close()


# the byte budget for remembered answers (README "Retries apply once"): an answer that
# does not fit is kept as its marker (key and fingerprint), so a retry is recognised
def keyed(key: str, size: int) -> tuple[str, Replay]:
    return key, Replay(hashlib.sha256(key.encode()).digest(), b"a" * size)


def marker(key: str) -> Replay:
    return Replay(hashlib.sha256(key.encode()).digest(), kept=False)


async def test_answers_over_the_byte_budget_become_markers_oldest_first(make: Factory) -> None:
    store = make(keys_per_session=8, answer_bytes_per_session=100)
    current = await store.create(session())

    async def change(key: str, size: int) -> None:
        nonlocal current
        current = await store.save(replace(current, steps=current.steps + 1), keyed(key, size))

    async def kept(*keys: str) -> list[Replay | None]:
        return [await store.replay(current.id, k) for k in keys]

    await change("k1", 40)
    await change("k2", 40)
    assert await kept("k1", "k2") == [keyed("k1", 40)[1], keyed("k2", 40)[1]]
    await change("k3", 40)  # 120 bytes: the oldest answer goes, its key stays
    assert await kept("k1", "k2", "k3") == [marker("k1"), keyed("k2", 40)[1], keyed("k3", 40)[1]]
    await change("k4", 90)  # both older answers go to make room
    assert await kept("k2", "k3", "k4") == [marker("k2"), marker("k3"), keyed("k4", 90)[1]]
    await change("k5", 10)  # exactly the budget: nothing else goes
    assert await kept("k4", "k5") == [keyed("k4", 90)[1], keyed("k5", 10)[1]]
    got = await store.get(current.id)
    assert got is not None and got.steps == 5 + 5  # every change applied, once


async def test_an_answer_over_the_budget_alone_is_kept_as_its_marker(make: Factory) -> None:
    store = make(keys_per_session=2, answer_bytes_per_session=100)
    s = await store.create(session())
    s = await store.save(replace(s, steps=6), keyed("small", 60))
    s = await store.save(replace(s, steps=7), keyed("big", 101))
    assert await store.replay(s.id, "big") == marker("big")
    assert await store.replay(s.id, "small") == keyed("small", 60)[1]  # a marker takes no room
    got = await store.get(s.id)
    assert got is not None and got.steps == 7
    s = await store.save(replace(s, steps=8), keyed("bigger", 5000))
    # markers count among the keys kept: the oldest key is forgotten
    assert [await store.replay(s.id, k) for k in ("small", "big", "bigger")] == [
        None,
        marker("big"),
        marker("bigger"),
    ]
    assert await store.delete(s.id)
    assert await store.replay(s.id, "bigger") is None


async def test_a_zero_budget_keeps_markers_only(make: Factory) -> None:
    store = make(answer_bytes_per_session=0)
    s = await store.create(session())
    await store.save(s, keyed("k", 1))
    assert await store.replay(s.id, "k") == marker("k")


def test_the_answer_format_is_unchanged_and_a_marker_is_the_fingerprint_alone() -> None:
    """Answers remembered before the budget existed stay readable: same bytes."""
    fingerprint = b"f" * 32
    assert Replay(fingerprint, b"{}").encode() == fingerprint + b"\xc8\x00{}"
    assert Replay.decode(fingerprint + b"\xc8\x00{}") == Replay(fingerprint, b"{}")
    assert Replay.decode(fingerprint + b"\xc8\x00") == Replay(fingerprint, b"")
    assert Replay(fingerprint, b"{}").marker().encode() == fingerprint
    assert Replay.decode(fingerprint) == Replay(fingerprint, kept=False)


async def test_redis_answers_stored_before_the_budget_are_read_and_counted(
    redis_server: RedisServer,
) -> None:
    """Answers an earlier release wrote (no budget) replay as before, and the first
    keyed save under a budget brings the session within it, oldest answers first."""
    import redis.asyncio as redis

    prefix = f"t{secrets.token_hex(4)}:"
    store = RedisSessionStore(redis_server.url, 30, 10, prefix=prefix, answer_bytes_per_session=100)
    client = redis.Redis.from_url(redis_server.url)
    try:
        s = await store.create(session())
        for key in ("old1", "old2"):  # as the previous release's SAVE script wrote them
            answers, order = store.keys.replays(s.id)
            await client.hset(answers, key, keyed(key, 80)[1].encode())
            await client.rpush(order, key)
        assert await store.replay(s.id, "old1") == keyed("old1", 80)[1]
        await store.save(s, keyed("new", 20))
        assert [await store.replay(s.id, k) for k in ("old1", "old2", "new")] == [
            marker("old1"),
            keyed("old2", 80)[1],
            keyed("new", 20)[1],
        ]
    finally:
        await client.aclose()
        await store.close()


async def test_redis_bytes_for_answers_are_bounded_by_the_budget(redis_server: RedisServer) -> None:
    """The issue's attack on Redis (4 sessions x 32 keyed changes with large answers):
    ~32 MB of answers stored before the budget; at most 4 x 1 MiB (the default) with it,
    plus the keys' markers."""
    import redis.asyncio as redis

    sessions, keys, size, budget = 4, 32, 250_000, 1024 * 1024  # budget: the default
    prefix = f"t{secrets.token_hex(4)}:"
    store = RedisSessionStore(redis_server.url, 30, 100, prefix=prefix)
    client = redis.Redis.from_url(redis_server.url)
    try:
        used_before = (await client.info("memory"))["used_memory"]
        ids = []
        for _ in range(sessions):
            s = await store.create(session())
            ids.append(s.id)
            for k in range(keys):
                s = await store.save(s, keyed(f"k{k}", size))
        stored = 0
        for sid in ids:
            for name in store.keys.replays(sid):
                stored += await client.memory_usage(name, samples=0)
        used = (await client.info("memory"))["used_memory"] - used_before
        print(
            f"\nredis: {sessions} sessions x {keys} answers of {size:,} bytes "
            f"({sessions * keys * size / 1e6:.0f} MB sent): answers stored {stored / 1e6:.2f} MB, "
            f"used_memory +{used / 1e6:.2f} MB (bound {sessions} x {budget:,})"
        )
        assert stored <= sessions * (budget + 64 * 1024)
        assert [await store.replay(ids[0], f"k{k}") for k in (27, 28, 31)] == [
            marker("k27"),
            keyed("k28", size)[1],
            keyed("k31", size)[1],
        ]
    finally:
        await client.aclose()
        await store.close()


@pytest.mark.slow  # waits out WAIT's second
async def test_a_write_no_replica_confirms_answers_503_naming_the_setting(
    redis_server: RedisServer,
) -> None:
    """SERVICE_REDIS_WAIT_REPLICAS=1 on a Redis with no replica: WAIT gives up after a
    second, and the write is not acknowledged (503, Retry-After), never a 500."""
    store = RedisSessionStore(
        redis_server.url, 30, 10, prefix=f"t{secrets.token_hex(4)}:", wait_replicas=1
    )
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as refused:
            await store.create(session())
        assert time.monotonic() - started >= 0.9  # WAIT's timeout: 1,000 ms
        assert "SERVICE_REDIS_WAIT_REPLICAS" in refused.value.message
        assert refused.value.retry_after == 1
    finally:
        await store.close()
