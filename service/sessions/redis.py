"""Redis session store: every server process sees the same sessions.

Keys (prefix `s2s:` by default):
- `{prefix}s:{id}`: the session as compact bytes (codec.py), expiring after the idle TTL;
- `{prefix}index`: a sorted set of live ids scored by expiry time, for the cap;
- `{prefix}lock:{id}`: the per-session lock (random token, expires after `lock_ttl`).

Guarantee: changes to one session are applied one at a time across all processes.
A change holds the session's lock (SET NX PX, released only by its owner) from load
to save, and the save is a compare-and-set on the revision it loaded, so even if a
lock expired under a stalled holder, two changes can never both start from the same
state: the second save is refused (409) instead of overwriting.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

from service.errors import Conflict, StoreUnavailable
from service.sessions import codec
from service.sessions.base import Session, SessionStore, capacity_exceeded, corrupt_session
from service.sessions.locks import LocalLocks

REVISION_OFFSET = 32  # byte offset of the u64 revision in the codec header

CREATE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, first[2]}
end
redis.call('SET', KEYS[2], ARGV[6], 'PX', ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return {1, ARGV[3]}
"""

TOUCH = """
local data = redis.call('GET', KEYS[2])
if not data then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return false
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
return data
"""

SAVE = """
if redis.call('GETRANGE', KEYS[2], ARGV[6], ARGV[6] + 7) ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
return 1
"""

UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisSessionStore(SessionStore):
    """At the cap, creation is refused (429 + Retry-After) after purging expired ids;
    live sessions are never evicted. Run Redis with `maxmemory-policy noeviction` so
    that Redis itself never drops a live session either."""

    def __init__(
        self,
        url: str,
        ttl_seconds: float,
        max_sessions: int,
        prefix: str = "s2s:",
        lock_ttl: float = 10.0,
        lock_wait: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        self.url = url
        self.ttl = ttl_seconds
        self.max_sessions = max_sessions
        self.prefix = prefix
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self._clock = clock
        self._index = f"{prefix}index"
        self._local = LocalLocks()
        self._client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            decode_responses=False,
        )
        self._create = self._client.register_script(CREATE)
        self._touch = self._client.register_script(TOUCH)
        self._save = self._client.register_script(SAVE)
        self._unlock = self._client.register_script(UNLOCK)

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}"

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(
            f"session store unavailable (redis at {self._safe_url()}): {exc}; retry shortly",
            headers={"Retry-After": "1"},
        )

    def _safe_url(self) -> str:
        """The URL without a password."""
        if "@" in self.url:
            scheme, rest = self.url.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return self.url

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def _times(self) -> tuple[int, int, int]:
        now = self._clock()
        ttl_ms = max(1, int(self.ttl * 1000))
        return int(now * 1000), ttl_ms, int(now * 1000) + ttl_ms

    async def health(self) -> str | None:
        try:
            await asyncio.wait_for(self._client.ping(), timeout=2.0)
        except (RedisError, OSError, TimeoutError) as exc:
            return f"redis at {self._safe_url()} unavailable: {exc or type(exc).__name__}"
        return None

    async def close(self) -> None:
        await self._client.aclose()

    async def create(self, session: Session) -> Session:
        now_ms, ttl_ms, expires_ms = self._times()
        ok, score = await self._call(
            self._create,
            keys=[self._index, self._key(session.id)],
            args=[session.id, now_ms, expires_ms, ttl_ms, self.max_sessions, codec.encode(session)],
        )
        if not int(ok):
            retry = max(1, math.ceil((float(score) - now_ms) / 1000))
            raise capacity_exceeded(self.max_sessions, retry)
        return replace(session, expires_at=expires_ms / 1000)

    async def get(self, session_id: str) -> Session | None:
        _, ttl_ms, expires_ms = self._times()
        try:
            data = await self._call(
                self._touch,
                keys=[self._index, self._key(session_id)],
                args=[session_id, ttl_ms, expires_ms],
            )
        except StoreUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, ResponseError) and "WRONGTYPE" in str(cause):
                # something other than a string under the session's key
                raise corrupt_session(session_id, f"not a session record: {cause}") from None
            raise
        if data is None:
            return None
        try:
            return codec.decode(session_id, data, expires_ms / 1000)
        except codec.CodecError as exc:
            raise corrupt_session(session_id, str(exc)) from None

    async def save(self, session: Session) -> Session:
        _, ttl_ms, expires_ms = self._times()
        saved = replace(session, revision=session.revision + 1, expires_at=expires_ms / 1000)
        ok = await self._call(
            self._save,
            keys=[self._index, self._key(session.id)],
            args=[
                session.id,
                struct.pack("<Q", session.revision),
                codec.encode(saved),
                ttl_ms,
                expires_ms,
                REVISION_OFFSET,
            ],
        )
        if not int(ok):
            raise Conflict(
                f"session '{session.id}' was changed or deleted by another request while "
                "this one ran; nothing was applied, retry",
                field="session_id",
            )
        return saved

    async def delete(self, session_id: str) -> bool:
        async def both() -> int:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(session_id))
                pipe.zrem(self._index, session_id)
                deleted, _ = await pipe.execute()
                return int(deleted)

        return bool(await self._call(both))

    async def count(self) -> int:
        now_ms, _, _ = self._times()

        async def purge_and_count() -> int:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(self._index, "-inf", now_ms)
                pipe.zcard(self._index)
                _, n = await pipe.execute()
                return int(n)

        return int(await self._call(purge_and_count))

    def lock(self, session_id: str) -> AbstractAsyncContextManager[None]:
        return self._lock(session_id)

    @asynccontextmanager
    async def _lock(self, session_id: str) -> AsyncIterator[None]:
        # waiters in this process queue locally; only one at a time asks Redis
        async with self._local.hold(session_id):
            key, token = f"{self.prefix}lock:{session_id}", secrets.token_hex(16)
            deadline = time.monotonic() + self.lock_wait
            pause = 0.001
            while not await self._call(
                self._client.set, key, token, nx=True, px=int(self.lock_ttl * 1000)
            ):
                if time.monotonic() > deadline:
                    raise StoreUnavailable(
                        f"session '{session_id}' stayed busy for {self.lock_wait:.0f} s; retry",
                        headers={"Retry-After": "1"},
                    )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.02)
            try:
                yield
            finally:
                with contextlib.suppress(RedisError, OSError):  # else it expires by itself
                    await self._unlock(keys=[key], args=[token])
