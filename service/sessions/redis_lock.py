"""The Redis session store's per-session lock: SET NX PX with a random token, renewed
while held, released only by its holder (a Lua script compares the token). Waiters in
one process queue locally (locks.py); only one at a time asks Redis, and one deadline
bounds both waits."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from service.sessions.locks import LocalLocks, session_busy
from service.sessions.redis_client import FAILURES
from service.sessions.redis_scripts import RENEW, UNLOCK

Call = Callable[..., Awaitable[Any]]  # a Redis call whose errors become StoreUnavailable


class RedisLocks:
    def __init__(
        self, client: Any, call: Call, key: Callable[[str], str], ttl: float, local: LocalLocks
    ):
        self._client = client  # redis.asyncio's Redis or RedisCluster
        self._call = call
        self._key = key
        self.ttl = ttl
        self._local = local
        self._unlock = client.register_script(UNLOCK)
        self._renew = client.register_script(RENEW)

    @asynccontextmanager
    async def hold(self, session_id: str) -> AsyncIterator[None]:
        wait = self._local.wait
        deadline = time.monotonic() + wait
        async with self._local.hold(session_id):
            key, token = self._key(session_id), secrets.token_hex(16)
            ttl_ms = max(1, int(self.ttl * 1000))
            pause = 0.001
            while not await self._call(self._client.set, key, token, nx=True, px=ttl_ms):
                if time.monotonic() > deadline:
                    raise session_busy(wait)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.02)
            renewal = asyncio.create_task(self._keep(key, token, ttl_ms))
            try:
                yield
            finally:
                renewal.cancel()
                with contextlib.suppress(*FAILURES):  # else it expires by itself
                    await self._unlock(keys=[key], args=[token])

    async def _keep(self, key: str, token: str, ttl_ms: int) -> None:
        """Renew the lock while its holder computes, so that it is held at least as
        long as the compute it protects (a holder that dies stops renewing: the lock
        expires within its ttl)."""
        while True:
            await asyncio.sleep(ttl_ms / 3000)
            with contextlib.suppress(*FAILURES):  # the next renewal may work
                if not int(await self._renew(keys=[key], args=[token, ttl_ms])):
                    return  # lost (expired while Redis was unreachable): the CAS guards
