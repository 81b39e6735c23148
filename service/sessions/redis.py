"""Redis session store: every server process sees the same sessions, on one Redis or
on a Redis Cluster (`cluster=True`).

Keys (prefix `s2s:` by default; where each lives and why: redis_keys.py):
- the session as compact bytes (codec.py), expiring after the idle TTL;
- per partition, a sorted set of its live ids scored by expiry, for the cap;
- the per-session lock (random token, expires after `lock_ttl`, renewed while held);
- Idempotency-Key answers (hash) and their order (list, the last `keys_per_session`
  kept), expiring with the session; within `answer_bytes_per_session` of answers'
  bodies, the oldest answers reduced to their markers (the 32-byte fingerprint) first;
- per API key, its sessions, for its quota (only when SERVICE_MAX_SESSIONS_PER_KEY is set).

Guarantee: changes to one session are applied one at a time across all processes.
A change holds the session's lock (SET NX PX, released only by its owner) from load
to save, and the save is a compare-and-set on the revision it loaded, so even if a
lock expired under a stalled holder, two changes can never both start from the same
state: the second save is refused (409) instead of overwriting.

With `wait_replicas` > 0 every write (create, save, delete) is acknowledged only once
that many replicas have it (redis_client.Connection.write).
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from redis.exceptions import ResponseError

from service.errors import Conflict, StoreUnavailable
from service.sessions import codec, redis_client
from service.sessions.locks import LocalLocks
from service.sessions.redis_keys import KeyLayout, partition_of, placements
from service.sessions.redis_lock import RedisLocks
from service.sessions.redis_scripts import COUNT, CREATE, DELETE, RESERVE, SAVE, STALE, TOUCH
from service.sessions.store import (
    Replay,
    SessionStore,
    StoredSession,
    capacity_exceeded,
    corrupt_session,
    owner_quota_exceeded,
)

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
        cluster: bool = False,
        wait_replicas: int = 0,
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
        self.keys = KeyLayout(prefix, tagged=cluster)
        self._redis = redis_client.Connection(url, cluster, wait_replicas)
        self._call, self._write = self._redis.call, self._redis.write
        self._client = self._redis.client
        script = self._client.register_script
        self._create, self._touch, self._save = script(CREATE), script(TOUCH), script(SAVE)
        self._delete, self._reserve, self._stale = script(DELETE), script(RESERVE), script(STALE)
        self._locks = RedisLocks(
            self._client, self._call, self.keys.lock, lock_ttl, LocalLocks(lock_wait)
        )

    def _session_keys(self, session_id: str) -> list[str]:
        """The keys the get, save and delete scripts take: partition index, session, replays."""
        index = self.keys.index(partition_of(session_id))
        return [index, self.keys.session(session_id), *self.keys.replays(session_id)]

    def safe_url(self) -> str:
        """The URL without user name or password, for logs."""
        return redis_client.safe_url(self.url)

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    def expiry(self) -> float:
        """What clients are told; Redis's clock decides the actual expiry."""
        return self._clock() + self.ttl

    async def health(self) -> str | None:
        return await self._redis.health()

    async def close(self) -> None:
        await self._redis.close()

    async def create(self, session: StoredSession, named: bool = False) -> StoredSession:
        soonest = None
        for session_id, cap in placements(session.id, self.max_sessions, named):
            placed = session.evolve(id=session_id)
            status, millis = await self._write(
                self._create,
                keys=[self.keys.index(partition_of(session_id)), self.keys.session(session_id)],
                args=[session_id, self._ttl_ms(), cap, codec.encode(placed)],
            )
            if int(status):
                break
            soonest = int(millis) if soonest is None else min(soonest, int(millis))
        else:
            raise capacity_exceeded(self.max_sessions, max(1, math.ceil((soonest or 0) / 1000)))
        if placed.owner is not None and self.max_per_owner:
            await self._within_quota(placed)
        return placed.evolve(expires_at=self.expiry())

    async def _within_quota(self, session: StoredSession) -> None:
        """Count the new session against its API key's quota, or delete it and refuse.
        Exact: only sessions looked up and found gone leave the count."""
        assert session.owner is not None
        owned = self.keys.owned(session.owner)
        stale = await self._call(self._stale, keys=[owned])
        looked_up: list[Any] = []
        if stale:

            async def look_up() -> list[Any]:
                async with self._redis.pipeline() as pipe:
                    for sid in stale:
                        pipe.pttl(self.keys.session(sid.decode()))
                    return list(await pipe.execute())

            for sid, left in zip(stale, await self._call(look_up), strict=True):
                looked_up += [sid, int(left)]
        status, millis = await self._call(
            self._reserve,
            keys=[owned],
            args=[self.max_per_owner, self._ttl_ms(), session.id, *looked_up],
        )
        if not int(status):
            await self._write(self._delete, keys=self._session_keys(session.id), args=[session.id])
            raise owner_quota_exceeded(self.max_per_owner, max(1, math.ceil(int(millis) / 1000)))

    async def get(self, session_id: str) -> StoredSession | None:
        try:
            data = await self._call(
                self._touch, keys=self._session_keys(session_id), args=[session_id, self._ttl_ms()]
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
        ok = await self._write(
            self._save,
            keys=self._session_keys(session.id),
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
        data = await self._call(self._client.hget, self.keys.replays(session_id)[0], key)
        return None if data is None else Replay.decode(data)

    async def delete(self, session_id: str, owner: str | None = None) -> bool:
        keys = self._session_keys(session_id)
        deleted = await self._write(self._delete, keys=keys, args=[session_id])
        if owner is not None and self.max_per_owner:
            await self._call(self._client.zrem, self.keys.owned(owner), session_id)
        return bool(int(deleted))

    async def count(self) -> int:
        """The live sessions: one ZCOUNT per partition (no scan, no purge)."""

        async def count_partitions() -> int:
            async with self._redis.pipeline() as pipe:
                for index in self.keys.indexes():
                    pipe.eval(COUNT, 1, index)
                return sum(int(n) for n in await pipe.execute())

        return int(await self._call(count_partitions))

    def lock(self, session_id: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(session_id)
