"""Dynamic batching: concurrent jobs for one model merge into one compute call.

Jobs queue on the event loop. One worker per batcher takes every queued job (up to
`max_rows` rows) as soon as the compute thread is free, optionally waiting up to
`max_delay` for more, groups them by key (jobs that can share a graph call: same
operation, same sequence length, same options) and runs all groups in one trip to the
compute thread. Under load, batches form by themselves while the previous one
computes; at low load a job starts at once.

A failing batch fails only its own jobs, whatever it raises. Should the worker itself
ever end other than by `close()`, the batcher is marked failed: queued and later jobs
are refused at once (503) and `failure` says why, so readiness can report it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from service.errors import ComputeFailed, NotReady, Overloaded
from service.metrics import BatchObserver

log = logging.getLogger("service")

# Runs on the compute thread: one group of payloads sharing a key -> one result each.
Process = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


@dataclass
class Job:
    key: Hashable
    rows: int
    payload: Any
    future: asyncio.Future[Any] = field(repr=False)
    queued_at: float = 0.0  # time.perf_counter() at submit


@dataclass
class BatchStats:
    batches: int = 0
    jobs: int = 0
    rows: int = 0
    largest: int = 0


class Batcher:
    def __init__(
        self,
        name: str,
        process: Process,
        executor: Executor,
        max_rows: int,
        max_delay: float,
        max_queue_rows: int,
        observer: BatchObserver | None = None,
    ):
        self.name = name
        self._observer = observer
        self._process = process
        self._executor = executor
        self.max_rows = max_rows
        self.max_delay = max_delay
        self.max_queue_rows = max_queue_rows
        self._queue: deque[Job] = deque()
        self._queued_rows = 0
        self._taken: list[Job] = []  # the batch the worker is running
        self._running = False  # a batch is out on the compute thread
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self.failure: str | None = None  # set if the worker ended unexpectedly
        self.stats = BatchStats()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def idle(self) -> bool:
        """Nothing queued and no batch computing."""
        return not self._queue and not self._running

    async def drain(self, timeout: float) -> bool:
        """Wait until queued jobs and the running batch are done (new jobs may still be
        submitted meanwhile); False if `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while not self.idle and self.failure is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def submit(self, key: Hashable, rows: int, payload: Any) -> Any:
        if self.failure is not None:
            raise self._failed()
        if self._queued_rows + rows > self.max_queue_rows:
            raise Overloaded(
                f"{self.name}: {self._queued_rows} rows already queued (limit "
                f"{self.max_queue_rows}, SERVICE_MAX_QUEUE_ROWS); retry shortly",
                headers={"Retry-After": "1"},
            )
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run_forever())
            self._worker.add_done_callback(self._worker_ended)
        future = asyncio.get_running_loop().create_future()
        job = Job(key, rows, payload, future, time.perf_counter())
        self._queue.append(job)
        self._queued_rows += rows
        self._wake.set()
        return await job.future

    async def close(self) -> None:
        self._closing = True
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        # every 503 says when to retry (here: on another replica, or this one restarted)
        self._fail_queued(Overloaded(f"{self.name}: shutting down", headers={"Retry-After": "1"}))

    def _failed(self) -> NotReady:
        return NotReady(
            f"{self.name}: unavailable ({self.failure}); retry on another replica",
            headers={"Retry-After": "1"},
        )

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        if self._closing:
            return
        error = None if task.cancelled() else task.exception()
        self.failure = f"batch worker stopped: {error!r}" if error else "batch worker cancelled"
        log.critical("%s: %s; refusing its requests from now on", self.name, self.failure)
        self._fail_queued(self._failed())

    def _fail_queued(self, error: Exception) -> None:
        for job in [*self._taken, *self._queue]:
            if not job.future.done():
                job.future.set_exception(error)
        self._taken = []
        self._queue.clear()
        self._queued_rows = 0

    def _take(self) -> list[Job]:
        jobs: list[Job] = []
        rows = 0
        while self._queue and (not jobs or rows + self._queue[0].rows <= self.max_rows):
            job = self._queue.popleft()
            rows += job.rows
            jobs.append(job)
        self._queued_rows -= rows
        self._taken = jobs
        return jobs

    async def _run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            if self.max_delay > 0 and self._queued_rows < self.max_rows:
                deadline = time.monotonic() + self.max_delay
                while self._queued_rows < self.max_rows and time.monotonic() < deadline:
                    await asyncio.sleep(min(0.0005, deadline - time.monotonic()))
            jobs = self._take()
            if not self._queue:
                self._wake.clear()
            jobs = [j for j in jobs if not j.future.done()]  # cancelled meanwhile
            if not jobs:
                continue
            self._count(jobs)
            if self._observer is not None:
                started = time.perf_counter()
                for job in jobs:
                    self._observer.waited.observe(started - job.queued_at)
            self._running = True
            try:
                results = await loop.run_in_executor(self._executor, self._run_groups, jobs)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the worker itself is being stopped
                failed = self._compute_failed("batch", "its compute call was cancelled")
                results = [failed] * len(jobs)
            except BaseException as exc:  # one batch must never end the worker
                log.exception("%s: batch failed", self.name)
                results = [self._as_exception(exc, "batch")] * len(jobs)
            finally:
                self._running = False
            for job, result in zip(jobs, results, strict=True):
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            self._taken = []

    def _run_groups(self, jobs: list[Job]) -> list[Any]:
        """On the compute thread: one process() call per key. Whatever one group
        raises becomes the result of its own jobs only."""
        groups: dict[Hashable, list[int]] = {}
        for index, job in enumerate(jobs):
            groups.setdefault(job.key, []).append(index)
        results: list[Any] = [None] * len(jobs)
        for key, indices in groups.items():
            if self._observer is not None:
                self._observer.rows.observe(sum(jobs[i].rows for i in indices))
            try:
                outputs = list(self._process(key, [jobs[i].payload for i in indices]))
                if len(outputs) != len(indices):
                    raise RuntimeError(f"{len(outputs)} results for {len(indices)} jobs")
            except BaseException as exc:  # see _as_exception
                log.exception("%s: group %r failed", self.name, key)
                outputs = [self._as_exception(exc, f"group {key!r}")] * len(indices)
            for i, output in zip(indices, outputs, strict=True):
                results[i] = output
        return results

    def _as_exception(self, exc: BaseException, where: str) -> Exception:
        """Ordinary exceptions reach the caller as they are; anything else (a
        KeyboardInterrupt or SystemExit raised by model code, ...) must not unwind a
        request handler or the event loop, so it becomes a ComputeFailed."""
        if isinstance(exc, Exception):
            return exc
        return self._compute_failed(where, type(exc).__name__)

    def _compute_failed(self, where: str, why: str) -> ComputeFailed:
        return ComputeFailed(f"{self.name}: {where} failed ({why}); the error was logged")

    def _count(self, jobs: list[Job]) -> None:
        rows = sum(j.rows for j in jobs)
        self.stats.batches += 1
        self.stats.jobs += len(jobs)
        self.stats.rows += rows
        self.stats.largest = max(self.stats.largest, rows)
