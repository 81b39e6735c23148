"""Latency and errors of any session store's calls, measured in one place: a store
that wraps another and records each call."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

from service.errors import CapacityExceeded, ServiceError
from service.observability.metrics import Metrics
from service.sessions.store import Replay, SessionStore, StoredSession

T = TypeVar("T")
OPERATIONS = ("create", "get", "save", "replay", "delete", "count", "lock")


class InstrumentedStore(SessionStore):
    def __init__(self, store: SessionStore, metrics: Metrics):
        self.inner = store
        self._metrics = metrics
        self._duration = {op: metrics.store_duration.labels(op) for op in OPERATIONS}

    def _failed(self, operation: str, exc: BaseException) -> None:
        if isinstance(exc, CapacityExceeded):
            return  # a refusal at the cap is the store working as configured
        code = exc.code if isinstance(exc, ServiceError) else "unexpected"
        self._metrics.store_errors.labels(operation, code).inc()

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except Exception as exc:
            self._failed(operation, exc)
            raise
        finally:
            self._duration[operation].observe(time.perf_counter() - started)

    async def create(self, session: StoredSession, named: bool = False) -> StoredSession:
        return await self._call("create", self.inner.create(session, named))

    async def get(self, session_id: str) -> StoredSession | None:
        return await self._call("get", self.inner.get(session_id))

    async def save(
        self, session: StoredSession, remember: tuple[str, Replay] | None = None
    ) -> StoredSession:
        return await self._call("save", self.inner.save(session, remember))

    async def replay(self, session_id: str, key: str) -> Replay | None:
        return await self._call("replay", self.inner.replay(session_id, key))

    async def delete(self, session_id: str, owner: str | None = None) -> bool:
        return await self._call("delete", self.inner.delete(session_id, owner))

    async def count(self) -> int:
        return await self._call("count", self.inner.count())

    def lock(self, session_id: str) -> AbstractAsyncContextManager[None]:
        return self._lock(session_id)

    @asynccontextmanager
    async def _lock(self, session_id: str) -> AsyncIterator[None]:
        """Measures the wait to acquire; what the holder then does is not the lock's."""
        started = time.perf_counter()
        acquired = False
        try:
            async with self.inner.lock(session_id):
                acquired = True
                self._duration["lock"].observe(time.perf_counter() - started)
                yield
        except Exception as exc:
            if not acquired:
                self._failed("lock", exc)
                self._duration["lock"].observe(time.perf_counter() - started)
            raise

    def expiry(self) -> float:
        return self.inner.expiry()

    async def health(self) -> str | None:
        return await self.inner.health()

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()
