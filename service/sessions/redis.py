"""Redis session store: every server process sees the same sessions.

Keys (prefix `s2s:` by default):
- `{prefix}s:{id}`: the session as compact bytes (codec.py), expiring after the idle TTL;
- `{prefix}index`: a sorted set of live ids scored by expiry time, for the cap;
- `{prefix}lock:{id}`: the per-session lock (random token, expires after `lock_ttl`,
  renewed while held);
- `{prefix}r:{id}` and `{prefix}rk:{id}`: Idempotency-Key answers (hash) and their
  order (list, the last `keys_per_session` kept), expiring with the session; within
  `answer_bytes_per_session` of answers' bodies, the oldest answers reduced to their
  markers (the 32-byte fingerprint) first;
- `{prefix}o:{owner}`: the ids of one API key's sessions, for its quota (only when
  SERVICE_MAX_SESSIONS_PER_KEY is set).

Guarantee: changes to one session are applied one at a time across all processes.
A change holds the session's lock (SET NX PX, released only by its owner) from load
to save, and the save is a compare-and-set on the revision it loaded, so even if a
lock expired under a stalled holder, two changes can never both start from the same
state: the second save is refused (409) instead of overwriting.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from service.errors import Conflict, StoreUnavailable
from service.sessions import codec
from service.sessions.locks import LocalLocks
from service.sessions.redis_lock import RedisLocks
from service.sessions.redis_scripts import CREATE, DELETE, SAVE, TOUCH
from service.sessions.store import (
    Replay,
    SessionStore,
    StoredSession,
    capacity_exceeded,
    corrupt_session,
    owner_quota_exceeded,
)

log = logging.getLogger("service")

REVISION_OFFSET = 32  # byte offset of the u64 revision in the codec header


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
        lock_wait: float = 10.0,
        clock: Callable[[], float] = time.time,
        max_per_owner: int = 0,
        keys_per_session: int = 32,
        answer_bytes_per_session: int = 1 << 20,
    ):
        self.url = url
        self.ttl = ttl_seconds
        self.max_sessions = max_sessions
        self.max_per_owner = max_per_owner
        self.keys_per_session = keys_per_session
        self.answer_bytes_per_session = answer_bytes_per_session
        self.prefix = prefix
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_wait
        self._clock = clock
        self._index = f"{prefix}index"
        self._client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            decode_responses=False,
            # after a Redis restart, every pooled connection is dead: without a retry
            # each would fail one request (503) first (measured: 503s for ~10 s after
            # recovery in `python -m bench faults`). One immediate retry on a fresh
            # connection, for connection errors only (a timed-out command may have run).
            health_check_interval=1,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._create = self._client.register_script(CREATE)
        self._touch = self._client.register_script(TOUCH)
        self._save = self._client.register_script(SAVE)
        self._delete = self._client.register_script(DELETE)
        self._locks = RedisLocks(
            self._client, self._call, f"{prefix}lock:", lock_ttl, LocalLocks(lock_wait)
        )

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}"

    def _replay_keys(self, session_id: str) -> list[str]:
        return [f"{self.prefix}r:{session_id}", f"{self.prefix}rk:{session_id}"]

    def _owner_key(self, owner: str | None) -> str:
        return f"{self.prefix}o:{owner}" if owner is not None and self.max_per_owner else ""

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        # the detail (address, driver message) goes to the log, never to clients
        log.warning("session store: redis at %s failed: %r", self.safe_url(), exc)
        return StoreUnavailable("session store unavailable; retry shortly", retry_after=1)

    def safe_url(self) -> str:
        """The URL without user name or password, for logs."""
        parts = urlsplit(self.url)
        if parts.username is None and parts.password is None:
            return self.url
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"***@{host}"))

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from exc

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    def expiry(self) -> float:
        """What clients are told; Redis's clock decides the actual expiry."""
        return self._clock() + self.ttl

    async def health(self) -> str | None:
        try:
            await asyncio.wait_for(self._client.ping(), timeout=2.0)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("session store: redis at %s unavailable: %r", self.safe_url(), exc)
            return "unavailable"
        return None

    async def close(self) -> None:
        await self._client.aclose()

    async def create(self, session: StoredSession) -> StoredSession:
        status, millis = await self._call(
            self._create,
            keys=[self._index, self._key(session.id), self._owner_key(session.owner)],
            args=[
                session.id,
                self._ttl_ms(),
                self.max_sessions,
                codec.encode(session),
                self.max_per_owner,
                f"{self.prefix}s:",
            ],
        )
        retry = max(1, math.ceil(int(millis or 0) / 1000))
        if int(status) == 0:
            raise capacity_exceeded(self.max_sessions, retry)
        if int(status) == 2:
            raise owner_quota_exceeded(self.max_per_owner, retry)
        return session.evolve(expires_at=self.expiry())

    async def get(self, session_id: str) -> StoredSession | None:
        try:
            data = await self._call(
                self._touch,
                keys=[self._index, self._key(session_id), *self._replay_keys(session_id)],
                args=[session_id, self._ttl_ms()],
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
            return codec.decode(session_id, data, self.expiry())
        except codec.CodecError as exc:
            raise corrupt_session(session_id, str(exc)) from None

    async def save(
        self, session: StoredSession, remember: tuple[str, Replay] | None = None
    ) -> StoredSession:
        saved = session.evolve(revision=session.revision + 1, expires_at=self.expiry())
        key, answer = remember if remember is not None else ("", None)
        if answer is not None:  # an answer over the budget never travels to Redis
            answer = answer.within(self.answer_bytes_per_session)
        ok = await self._call(
            self._save,
            keys=[self._index, self._key(session.id), *self._replay_keys(session.id)],
            args=[
                session.id,
                struct.pack("<Q", session.revision),
                codec.encode(saved),
                self._ttl_ms(),
                REVISION_OFFSET,
                key,
                answer.encode() if answer is not None else b"",
                self.keys_per_session,
                self.answer_bytes_per_session,
            ],
        )
        if not int(ok):
            raise Conflict(
                "the session was changed or deleted by another request while this one "
                "ran; nothing was applied, retry",
                field="session_id",
            )
        return saved

    async def replay(self, session_id: str, key: str) -> Replay | None:
        data = await self._call(self._client.hget, self._replay_keys(session_id)[0], key)
        return None if data is None else Replay.decode(data)

    async def delete(self, session_id: str, owner: str | None = None) -> bool:
        keys = [self._index, self._key(session_id), *self._replay_keys(session_id)]
        deleted = await self._call(
            self._delete, keys=[*keys, self._owner_key(owner)], args=[session_id]
        )
        return bool(int(deleted))

    async def count(self) -> int:
        async def purge_and_count() -> int:
            (seconds, micros) = await self._client.time()
            now_ms = int(seconds) * 1000 + int(micros) // 1000
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(self._index, "-inf", now_ms)
                pipe.zcard(self._index)
                _, n = await pipe.execute()
                return int(n)

        return int(await self._call(purge_and_count))

    def lock(self, session_id: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(session_id)
