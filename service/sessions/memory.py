"""In-process session store: the embedded default for a single server process."""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from service.sessions.locks import LocalLocks
from service.sessions.store import (
    Replay,
    SessionStore,
    StoredSession,
    capacity_exceeded,
    owner_quota_exceeded,
)


class MemorySessionStore(SessionStore):
    """Sessions in a dict. At the cap, expired sessions are purged first; if the store
    is still full, creation is refused (429 with Retry-After): live sessions are never
    evicted to make room.

    Expiry order is a heap of (expires_at, id) entries, one pushed per TTL refresh; an
    entry whose session has since been refreshed or deleted is stale and skipped when
    it reaches the top. A refusal at the cap therefore costs O(log n), not a scan, and
    the heap is rebuilt when stale entries outnumber live sessions.
    """

    def __init__(
        self,
        ttl_seconds: float,
        max_sessions: int,
        clock: Callable[[], float] = time.time,
        sweep_seconds: float | None = None,
        max_per_owner: int = 0,
        keys_per_session: int = 32,
        lock_wait: float = 10.0,
        answer_bytes_per_session: int = 1 << 20,
    ):
        self.ttl = ttl_seconds
        self.max_sessions = max_sessions
        self.max_per_owner = max_per_owner
        self.keys_per_session = keys_per_session
        self.answer_bytes_per_session = answer_bytes_per_session
        self._clock = clock
        self._sessions: dict[str, StoredSession] = {}
        self._expiry: list[tuple[float, str]] = []
        self._owned: dict[str, set[str]] = {}
        self._replays: dict[str, OrderedDict[str, Replay]] = {}
        self._locks = LocalLocks(lock_wait)
        self._sweep_seconds = sweep_seconds or min(60.0, ttl_seconds / 4)
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_seconds)
            self.purge_expired()

    def _put(self, session: StoredSession) -> StoredSession:
        self._sessions[session.id] = session
        heapq.heappush(self._expiry, (session.expires_at, session.id))
        if len(self._expiry) > 2 * len(self._sessions) + 64:
            self._expiry = [(s.expires_at, sid) for sid, s in self._sessions.items()]
            heapq.heapify(self._expiry)
        return session

    def _drop(self, session_id: str) -> StoredSession | None:
        session = self._sessions.pop(session_id, None)
        self._replays.pop(session_id, None)
        if session is not None and session.owner is not None:
            owned = self._owned.get(session.owner)
            if owned is not None:
                owned.discard(session_id)
                if not owned:
                    del self._owned[session.owner]
        return session

    def _soonest(self) -> float | None:
        """The earliest expiry among live sessions, dropping stale heap entries and
        expired sessions on the way: amortised O(log n)."""
        now = self._clock()
        while self._expiry:
            expires_at, sid = self._expiry[0]
            session = self._sessions.get(sid)
            if session is None or session.expires_at != expires_at:
                heapq.heappop(self._expiry)  # stale: refreshed or deleted since
            elif expires_at <= now:
                heapq.heappop(self._expiry)
                self._drop(sid)
            else:
                return expires_at
        return None

    def purge_expired(self) -> int:
        before = len(self._sessions)
        self._soonest()
        return before - len(self._sessions)

    def _live(self, session_id: str) -> StoredSession | None:
        session = self._sessions.get(session_id)
        if session is not None and session.expires_at <= self._clock():
            self._drop(session_id)
            return None
        return session

    def _retry_after(self, expires_at: float) -> int:
        return max(1, math.ceil(expires_at - self._clock()))

    async def create(self, session: StoredSession, named: bool = False) -> StoredSession:
        if len(self._sessions) >= self.max_sessions:
            soonest = self._soonest()
            if len(self._sessions) >= self.max_sessions:
                assert soonest is not None
                raise capacity_exceeded(self.max_sessions, self._retry_after(soonest))
        owner = session.owner
        if owner is not None and self.max_per_owner:
            owned = self._owned.get(owner, set())
            live = [s for s in (self._live(sid) for sid in list(owned)) if s is not None]
            if len(live) >= self.max_per_owner:  # O(quota): bounded by the setting
                soonest = min(s.expires_at for s in live)
                raise owner_quota_exceeded(self.max_per_owner, self._retry_after(soonest))
        if owner is not None:
            self._owned.setdefault(owner, set()).add(session.id)
        return self._put(session.evolve(expires_at=self._clock() + self.ttl))

    async def get(self, session_id: str) -> StoredSession | None:
        session = self._live(session_id)
        if session is None:
            return None
        return self._put(session.evolve(expires_at=self._clock() + self.ttl))

    async def save(
        self, session: StoredSession, remember: tuple[str, Replay] | None = None
    ) -> StoredSession:
        stored = session.evolve(revision=session.revision + 1, expires_at=self._clock() + self.ttl)
        if remember is not None:
            self._remember(session.id, *remember)
        return self._put(stored)

    def _remember(self, session_id: str, key: str, answer: Replay) -> None:
        """The newest answer last; beyond `keys_per_session` the oldest keys are forgotten,
        and beyond `answer_bytes_per_session` the oldest answers become markers."""
        budget = self.answer_bytes_per_session
        replays = self._replays.setdefault(session_id, OrderedDict())
        replays.pop(key, None)
        replays[key] = answer.within(budget)
        while len(replays) > self.keys_per_session:
            replays.popitem(last=False)
        over = sum(r.size for r in replays.values()) - budget
        for old_key, old in list(replays.items()):  # oldest first; the newest fits
            if over <= 0:
                break
            if old.size:
                replays[old_key] = old.marker()
                over -= old.size

    async def replay(self, session_id: str, key: str) -> Replay | None:
        if self._live(session_id) is None:
            return None
        replays = self._replays.get(session_id)
        return None if replays is None else replays.get(key)

    async def delete(self, session_id: str, owner: str | None = None) -> bool:
        return self._live(session_id) is not None and self._drop(session_id) is not None

    async def count(self) -> int:
        self.purge_expired()
        return len(self._sessions)

    def expiry(self) -> float:
        return self._clock() + self.ttl

    def lock(self, session_id: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(session_id)
