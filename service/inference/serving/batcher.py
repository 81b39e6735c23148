"""Iteration-level batching: concurrent jobs for one model and operation share compute
calls, and a long job runs in slices that let everything else through between them.

Jobs queue on the event loop. One worker per batcher runs iterations: each takes the
jobs still running from the last iteration plus newly queued ones (up to `max_rows`
rows in all; queued jobs are taken round-robin by owner, the API key that sent them:
fair_queue.py), groups them by key (jobs that can share a graph call) and runs every
group in one trip to the compute thread. A group's `process` answers each job with
its result, or with `Continue` when the job has more to do (a decode runs a bounded
slice of steps per iteration): the job then stays in the running set and joins the
next iteration, together with whatever arrived meanwhile ("continuous batching", as
Orca and vLLM schedule autoregressive decoders). Finished jobs leave at once. Every
batcher of every model takes its turn on the compute thread between two slices of
another's, so a long decode delays others by a slice, not by its whole length.

Isolation: a failing group is retried job by job, so only the jobs that fail alone
get an error, whatever they raise. Should the worker itself ever end other than by
`close()`, the batcher is marked failed: queued and later jobs are refused at once
(503) and `failure` says why, so readiness can report it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from typing import Any

from service.errors import ComputeFailed, NotReady, Overloaded
from service.inference.serving.fair_queue import FairQueue
from service.inference.serving.jobs import BatchStats, Continue, Job
from service.observability.metrics import BatchObserver
from service.observability.request_context import current_owner

log = logging.getLogger("service")

# Runs on the compute thread: one group of payloads sharing a key -> one result each
# (a value, an exception to raise in its caller, or Continue).
Process = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


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
        self._queue: FairQueue[Job] = FairQueue()
        self._active: list[Job] = []  # jobs that continue in the next iteration
        self._taken: list[Job] = []  # the iteration the worker is running
        self._running = False  # an iteration is out on the compute thread
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        self.failure: str | None = None  # set if the worker ended unexpectedly
        self.admitted_at = -1.0  # time.monotonic() when new jobs last started
        self.stats = BatchStats()

    @property
    def queued_rows(self) -> int:
        return self._queue.rows

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing running and nothing to continue."""
        return not self._queue and not self._running and not self._active

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
        if self._queue.rows + rows > self.max_queue_rows:
            raise Overloaded(
                f"{self.name}: {self._queue.rows} rows already queued (limit "
                f"{self.max_queue_rows}, SERVICE_MAX_QUEUE_ROWS); retry shortly",
                retry_after=1,
            )
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run_forever())
            self._worker.add_done_callback(self._worker_ended)
        future = asyncio.get_running_loop().create_future()
        owner = current_owner()
        job = Job(key, rows, payload, future, time.perf_counter(), owner)
        self._queue.append(job)
        self._wake.set()
        return await job.future

    async def close(self) -> None:
        self._closing = True
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
        # every 503 says when to retry (here: on another replica, or this one restarted)
        self._fail_queued(Overloaded(f"{self.name}: shutting down", retry_after=1))

    def _failed(self) -> NotReady:
        return NotReady(
            f"{self.name}: unavailable ({self.failure}); retry on another replica",
            retry_after=1,
        )

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        if self._closing:
            return
        error = None if task.cancelled() else task.exception()
        self.failure = f"batch worker stopped: {error!r}" if error else "batch worker cancelled"
        log.critical("%s: %s; refusing its requests from now on", self.name, self.failure)
        self._fail_queued(self._failed())

    def _fail_queued(self, error: Exception) -> None:
        queued = list(self._queue)
        for job in [*self._taken, *self._active, *queued]:
            if not job.future.done():
                job.future.set_exception(error)
        self._taken = []
        self._active = []
        self._queue.clear()

    async def _run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._active:
                await self._wake.wait()
                if self.max_delay > 0 and self._queue.rows < self.max_rows:
                    deadline = time.monotonic() + self.max_delay
                    while self._queue.rows < self.max_rows and time.monotonic() < deadline:
                        await asyncio.sleep(min(0.0005, deadline - time.monotonic()))
            running = [j for j in self._active if not j.future.done()]  # gone: leave
            self._active = running
            room = self.max_rows - sum(j.rows for j in running)
            new = self._queue.take(room, at_least_one=not running)
            if not self._queue:
                self._wake.clear()
            new = [j for j in new if not j.future.done()]  # cancelled meanwhile
            if new:
                self.admitted_at = time.monotonic()
            jobs = running + new
            self._active = []
            if not jobs:
                continue
            self._taken = jobs
            self.stats.jobs += len(new)
            self._count(jobs)
            if self._observer is not None:
                started = time.perf_counter()
                for job in new:
                    self._observer.waited.observe(started - job.queued_at)
            self._running = True
            note = getattr(self._executor, "note", None)
            if note is not None:
                note(self)
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
                if isinstance(result, Continue):
                    job.payload, job.rows = result.payload, result.rows
                    self._active.append(job)
                elif isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
            self._taken = []

    def _run_groups(self, jobs: list[Job]) -> list[Any]:
        """On the compute thread: one process() call per key. A group that raises is run
        again job by job, so whatever a job raises becomes its own result only."""
        groups: dict[Hashable, list[int]] = {}
        for index, job in enumerate(jobs):
            groups.setdefault(job.key, []).append(index)
        results: list[Any] = [None] * len(jobs)
        for key, indices in groups.items():
            if self._observer is not None:
                self._observer.rows.observe(sum(jobs[i].rows for i in indices))
            try:
                outputs = self._call(key, [jobs[i] for i in indices])
            except BaseException as exc:  # see _as_exception
                if len(indices) == 1:
                    log.exception("%s: group %r failed", self.name, key)
                    outputs = [self._as_exception(exc, f"group {key!r}")]
                else:
                    log.warning(
                        "%s: group %r failed (%r); retrying job by job", self.name, key, exc
                    )
                    outputs = [self._alone(key, jobs[i]) for i in indices]
            for i, output in zip(indices, outputs, strict=True):
                results[i] = output
        return results

    def _call(self, key: Hashable, jobs: list[Job]) -> list[Any]:
        outputs = list(self._process(key, [job.payload for job in jobs]))
        if len(outputs) != len(jobs):
            raise RuntimeError(f"{len(outputs)} results for {len(jobs)} jobs")
        return outputs

    def _alone(self, key: Hashable, job: Job) -> Any:
        try:
            return self._call(key, [job])[0]
        except BaseException as exc:
            log.exception("%s: a job of group %r failed alone", self.name, key)
            return self._as_exception(exc, f"group {key!r}")

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
        self.stats.rows += rows
        self.stats.largest = max(self.stats.largest, rows)
