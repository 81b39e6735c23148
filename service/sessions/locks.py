"""Per-key asyncio locks that disappear when nobody holds or waits for them, with a
bounded wait: a request queued behind a busy session gets 503 + Retry-After instead of
waiting without end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.errors import StoreUnavailable


def session_busy(wait: float) -> StoreUnavailable:
    return StoreUnavailable(
        f"the session stayed busy with other requests for {wait:g} s "
        "(SERVICE_SESSION_LOCK_WAIT_SECONDS); retry",
        field="session_id",
        retry_after=1,
    )


class LocalLocks:
    def __init__(self, wait: float = 10.0) -> None:
        self.wait = wait
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            if users == 0:  # nobody holds or waits for it: taken at once, no timer
                await lock.acquire()
            else:
                try:
                    async with asyncio.timeout(self.wait):
                        await lock.acquire()
                except TimeoutError:
                    raise session_busy(self.wait) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)
