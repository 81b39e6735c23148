"""What the app holds while it runs; routes reach it through `deps`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from service.config import Settings
from service.dataplane.predict import Predictor
from service.dataplane.sessions import SessionOps
from service.inference.engine import BatchSettings, Engines
from service.inference.registry import Registry
from service.sessions.base import SessionStore


@dataclass
class Runtime:
    settings: Settings
    store: SessionStore
    registry: Registry | None = None  # None until every model is loaded
    engines: Engines | None = None
    sessions: SessionOps | None = None
    predictor: Predictor | None = None
    executor: ThreadPoolExecutor | None = None

    def attach(self, registry: Registry) -> None:
        settings = self.settings
        self.executor = ThreadPoolExecutor(settings.compute_threads, thread_name_prefix="compute")
        batching = BatchSettings(
            max_rows=settings.batch_max_rows,
            max_delay=settings.batch_max_delay_ms / 1000,
            max_queue_rows=settings.max_queue_rows,
        )
        self.engines = Engines(registry.all(), self.executor, batching)
        self.registry = registry
        self.sessions = SessionOps(registry, self.engines, self.store, settings)
        self.predictor = Predictor(registry, self.engines, settings)

    async def close(self) -> None:
        if self.engines is not None:
            await self.engines.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
