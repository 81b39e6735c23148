"""In-process session store: the embedded default for a single server process."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace

from service.sessions.base import Session, SessionStore, capacity_exceeded
from service.sessions.locks import LocalLocks


class MemorySessionStore(SessionStore):
    """Sessions in a dict. At the cap, expired sessions are purged first; if the store
    is still full, creation is refused (429 with Retry-After): live sessions are never
    evicted to make room."""

    def __init__(
        self,
        ttl_seconds: float,
        max_sessions: int,
        clock: Callable[[], float] = time.time,
        sweep_seconds: float | None = None,
    ):
        self.ttl = ttl_seconds
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._locks = LocalLocks()
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

    def purge_expired(self) -> int:
        now = self._clock()
        expired = [sid for sid, s in self._sessions.items() if s.expires_at <= now]
        for sid in expired:
            del self._sessions[sid]
        return len(expired)

    def _live(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is not None and session.expires_at <= self._clock():
            del self._sessions[session_id]
            return None
        return session

    async def create(self, session: Session) -> Session:
        if len(self._sessions) >= self.max_sessions and self.purge_expired() == 0:
            soonest = min(s.expires_at for s in self._sessions.values())
            retry = max(1, math.ceil(soonest - self._clock()))
            raise capacity_exceeded(self.max_sessions, retry)
        stored = replace(session, expires_at=self._clock() + self.ttl)
        self._sessions[session.id] = stored
        return stored

    async def get(self, session_id: str) -> Session | None:
        session = self._live(session_id)
        if session is None:
            return None
        session = replace(session, expires_at=self._clock() + self.ttl)
        self._sessions[session_id] = session
        return session

    async def save(self, session: Session) -> Session:
        stored = replace(
            session, revision=session.revision + 1, expires_at=self._clock() + self.ttl
        )
        self._sessions[session.id] = stored
        return stored

    async def delete(self, session_id: str) -> bool:
        return self._live(session_id) is not None and self._sessions.pop(session_id) is not None

    async def count(self) -> int:
        self.purge_expired()
        return len(self._sessions)

    def lock(self, session_id: str) -> AbstractAsyncContextManager[None]:
        return self._locks.hold(session_id)
