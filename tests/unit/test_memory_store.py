import asyncio
import time

import numpy as np
import pytest

from service.api.errors import status_of
from service.errors import CapacityExceeded
from service.sessions.memory import MemorySessionStore
from service.sessions.store import StoredSession, new_session_id

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def session(sid: str | None = None) -> StoredSession:
    return StoredSession(
        id=sid or new_session_id(),
        model="m",
        version=1,
        steps=0,
        states=(np.zeros(3, np.float32),),
        next_token=0,
        created_at=time.time(),
    )


def test_ids_are_long_and_distinct() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) >= 32 for i in ids)  # 24 random bytes, base64url


def test_ids_never_start_with_a_dash() -> None:
    # a command line reads "-abc" as an option (the CLI failed on 1 id in 64 before)
    assert not any(new_session_id().startswith("-") for _ in range(5000))


async def test_idle_sessions_expire_and_access_refreshes() -> None:
    clock = Clock()
    store = MemorySessionStore(ttl_seconds=10, max_sessions=10, clock=clock)
    s = await store.create(session("a"))
    assert s.expires_at == 1010
    clock.now += 8
    assert (await store.get("a")) is not None  # refreshed to 1018
    clock.now += 8
    assert (await store.get("a")) is not None
    clock.now += 10
    assert await store.get("a") is None
    assert await store.count() == 0


async def test_cap_refuses_new_sessions_with_retry_after() -> None:
    clock = Clock()
    store = MemorySessionStore(ttl_seconds=30, max_sessions=2, clock=clock)
    await store.create(session("a"))
    clock.now += 10
    await store.create(session("b"))
    with pytest.raises(CapacityExceeded) as info:
        await store.create(session("c"))
    assert status_of(info.value) == 429
    assert info.value.retry_after == 20
    assert await store.get("a") is not None and await store.get("b") is not None


async def test_cap_purges_expired_sessions_first() -> None:
    clock = Clock()
    store = MemorySessionStore(ttl_seconds=30, max_sessions=1, clock=clock)
    await store.create(session("a"))
    clock.now += 31
    await store.create(session("b"))
    assert await store.get("a") is None and await store.get("b") is not None


async def test_save_increments_revision_and_delete() -> None:
    store = MemorySessionStore(ttl_seconds=30, max_sessions=5)
    s = await store.create(session("a"))
    saved = await store.save(s)
    assert saved.revision == s.revision + 1
    assert await store.delete("a") is True
    assert await store.delete("a") is False


async def test_lock_serialises_and_cleans_up() -> None:
    store = MemorySessionStore(ttl_seconds=30, max_sessions=5)
    order: list[str] = []

    async def worker(name: str) -> None:
        async with store.lock("a"):
            order.append(f"{name}-in")
            await asyncio.sleep(0.01)
            order.append(f"{name}-out")

    await asyncio.gather(worker("x"), worker("y"), worker("z"))
    assert order[0::2] == [o.replace("out", "in") for o in order[1::2]]
    assert len(store._locks) == 0


def test_evolve_is_dataclasses_replace() -> None:
    from dataclasses import replace

    s = session("a")
    changes = {"steps": 3, "next_token": 5, "revision": 2, "expires_at": 9.5}
    assert s.evolve(**changes) == replace(s, **changes)
    assert s.evolve(**changes) is not s and s.steps == 0  # the original unchanged
    with pytest.raises(TypeError, match="nope"):
        s.evolve(nope=1)
