"""What the app holds while it runs; routes reach it through `deps`."""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from service.config import Settings
from service.dataplane.health import loaded
from service.dataplane.kv_sessions import KvSessions
from service.dataplane.predict import Predictor
from service.dataplane.session_ops import SessionOps
from service.errors import Conflict, ServiceError
from service.inference.model.registry import Registry, version_number
from service.inference.serving.engine import BatchSettings, Engines
from service.inference.serving.executor import ComputeExecutor
from service.inference.serving.reload import Reloader, ReloadReport
from service.observability.metrics import Metrics, ModelState
from service.sessions.instrumented import InstrumentedStore
from service.sessions.store import SessionStore


@dataclass
class Runtime:
    settings: Settings
    store: SessionStore
    registry: Registry | None = None  # None until every model is loaded
    engines: Engines | None = None
    sessions: SessionOps | None = None
    predictor: Predictor | None = None
    executor: ThreadPoolExecutor | None = None
    reloader: Reloader | None = None  # None when the models were not loaded from a store
    draining: bool = False  # shutting down: readiness 503, requests still served
    in_flight: int = 0  # HTTP requests received and not yet answered (middleware/observe.py)
    metrics: Metrics = field(default_factory=Metrics)  # this app's own registry
    _poller: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    def attach(self, registry: Registry, model_store: Path | None = None) -> None:
        """Serve `registry`; with `model_store`, follow that store (POST /v1/admin/reload,
        and a poll every SERVICE_MODEL_POLL_SECONDS; call this on the event loop)."""
        settings = self.settings
        self.executor = ComputeExecutor(settings.compute_threads)
        batching = BatchSettings(
            max_rows=settings.batch_max_rows,
            max_delay=settings.batch_max_delay_ms / 1000,
            max_queue_rows=settings.max_queue_rows,
            slice_seconds=settings.batch_slice_ms / 1000,
        )
        self.engines = Engines(registry.all(), self.executor, batching, self.metrics)
        self.registry = registry
        store = InstrumentedStore(self.store, self.metrics)
        kv = KvSessions(settings.session_kv_cache_mb * 2**20, self.metrics.session_kv_cache)
        self.sessions = SessionOps(registry, self.engines, store, settings, kv)
        self.predictor = Predictor(registry, self.engines, settings)
        if model_store is not None:
            self.reloader = Reloader(
                model_store,
                registry,
                self.engines,
                drain_timeout=settings.shutdown_timeout_seconds,
            )
            if settings.model_poll_seconds > 0:
                poll = self.reloader.poll(settings.model_poll_seconds)
                self._poller = asyncio.get_running_loop().create_task(poll)

    async def reload(self) -> ReloadReport:
        loaded(self)
        if self.reloader is None:
            raise Conflict("reloading is off: this app was given its models, not a model store")
        return await self.reloader.reload()

    async def scrape(self) -> bytes:
        """The metrics in Prometheus's text format, with the gauges that describe the
        present (live sessions, model versions) read now."""
        try:
            sessions: int | None = await self.store.count()
        except ServiceError:  # e.g. Redis unreachable: the scrape still answers
            sessions = None
        self.metrics.sessions(sessions)
        if self.registry is not None:
            self.metrics.models(_model_states(self.registry))
        if self.engines is not None:
            self.metrics.queues(self.engines.queues(), self.settings.batch_max_rows)
        self.metrics.in_flight.set(self.in_flight)
        return self.metrics.render()

    def start_draining(self) -> None:
        """Shutdown has begun: readiness answers 503 from now on. Safe in a signal
        handler (no logging, no I/O)."""
        self.draining = True

    async def close(self) -> None:
        """Stop polling, let queued batches finish (bounded by
        SERVICE_SHUTDOWN_TIMEOUT_SECONDS), then stop the compute threads."""
        self.draining = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        if self.engines is not None:
            await self.engines.close(self.settings.shutdown_timeout_seconds)
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


def _model_states(registry: Registry) -> list[ModelState]:
    states = [ModelState(m.spec.name, m.spec.version, True, m.load_seconds) for m in registry.all()]
    for name, refusals in registry.all_refused().items():
        for version, _ in refusals:
            number = None if version is None else version_number(version)
            if number is not None:  # None: the model directory as a whole
                states.append(ModelState(name, number, False))
    return states
