"""Cost of a refused session create at the cap, in-process store, by store size.

python -m bench.store_cap

A refusal used to scan every session for the soonest expiry (10 ms at 100,000); it is
now a heap lookup. Prints microseconds per refused create and the ratio to the
smallest store: a scan grows ~100x from 1,000 to 100,000 sessions, a heap stays flat.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from service.errors import CapacityExceeded
from service.sessions.memory import MemorySessionStore
from service.sessions.store import StoredSession, new_session_id

SIZES = (1_000, 10_000, 100_000)
REFUSALS = 2_000


def _session() -> StoredSession:
    state = np.zeros(128, np.float32)
    return StoredSession(new_session_id(), "reverse", 1, 0, (state, state), None, time.time())


async def per_refusal(size: int) -> tuple[float, float]:
    store = MemorySessionStore(3600, size)
    for _ in range(size):
        await store.create(_session())
    for _ in range(size // 2):  # refreshed sessions leave stale heap entries behind
        await store.get(next(iter(store._sessions)))
    extra = _session()
    started = time.perf_counter()
    for _ in range(REFUSALS):
        try:
            await store.create(extra)
        except CapacityExceeded:
            pass
        else:
            raise AssertionError("the store should be full")
    heap = (time.perf_counter() - started) / REFUSALS
    # the baseline, in the same run: what the previous refusal did (two scans)
    now, scans = time.time(), 20
    started = time.perf_counter()
    for _ in range(scans):
        [sid for sid, s in store._sessions.items() if s.expires_at <= now]
        min(s.expires_at for s in store._sessions.values())
    return heap, (time.perf_counter() - started) / scans


def main() -> None:
    base = None
    print(f"{'sessions':>10} {'us per 429':>11} {'ratio':>6} {'scan us (before)':>17}")
    for size in SIZES:
        seconds, scan = asyncio.run(per_refusal(size))
        base = base or seconds
        print(f"{size:>10,} {seconds * 1e6:>11.1f} {seconds / base:>6.2f} {scan * 1e6:>17.0f}")


if __name__ == "__main__":
    main()
