"""One model's XLA programs (SERVICE_XLA): which shape buckets are compiled, compiling
the others on a background pool, and the fall-back to the TF graphs.

The compute thread only ever calls a program that is compiled ("ready"): a request whose
bucket is not is answered by the TF graph (the same answer, a little slower) while the
pool compiles that bucket, so no request waits for XLA's compiler. A model XLA cannot
compile (an op it has no kernel for, a SavedModel signature it cannot lower) is logged
once and served by its TF graphs from then on.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import tensorflow as tf

from service.inference.compiled.background import lower_priority
from service.inference.compiled.functions import Recipe, trace

log = logging.getLogger("service")

Mode = Literal["auto", "on", "off"]
Key = tuple[str, tuple[tuple[int, ...], ...]]  # graph name, every input's shape
Priority = int
ON_DEMAND, PLANNED = 0, 1  # a request met the bucket / the warm-up plans it
MOST_PROGRAMS = 64  # per model (each costs memory: ~6 MB here); shapes beyond stay graphs
POOL_THREADS = 2

_mode: Mode = "off"  # a library caller gets the TF graphs; the app sets it (configure)
_largest_batch = 256


def configure(mode: Mode, largest_batch: int) -> None:
    global _mode, _largest_batch
    _mode, _largest_batch = mode, largest_batch


def mode() -> Mode:
    return _mode


def largest_batch() -> int:
    return _largest_batch


def _flat(args: Sequence[Any]) -> list[np.ndarray]:
    out: list[np.ndarray] = []
    for arg in args:
        if isinstance(arg, list | tuple):
            out.extend(_flat(arg))
        else:
            out.append(np.asarray(arg))
    return out


def key_of(name: str, args: Sequence[Any]) -> Key:
    return name, tuple(a.shape for a in _flat(args))


def _tensors(args: Sequence[Any]) -> list[Any]:
    return [_tensors(a) if isinstance(a, list | tuple) else tf.constant(a) for a in args]


class Xla:
    def __init__(self, label: str, table: dict[str, Recipe]) -> None:
        self._label = label
        self._table = table
        self._lock = threading.Lock()
        self._concrete: dict[str, Any] = {}
        self._ready: set[Key] = set()
        self._pending: set[Key] = set()
        self._broken: set[Key] = set()  # compiled, then raised when run: graphs from then on
        self.failure: str | None = None  # why this model is served by TF graphs
        self.runs = 0  # calls answered by XLA (the tests check the path they took)

    @property
    def usable(self) -> bool:
        return self.failure is None

    def ready(self, key: Key) -> bool:
        return key in self._ready and self.failure is None

    def buckets(self) -> dict[str, dict[str, list[int]]]:
        """Batch sizes compiled ("ready") and queued ("pending"), by graph name."""
        with self._lock:
            found = {"ready": list(self._ready), "pending": list(self._pending)}
        out: dict[str, dict[str, list[int]]] = {}
        for state, keys in found.items():
            by_graph: dict[str, set[int]] = {}
            for name, shapes in keys:
                by_graph.setdefault(name, set()).add(shapes[0][0])
            out[state] = {name: sorted(b) for name, b in sorted(by_graph.items())}
        return out

    def call(self, name: str, args: Sequence[Any]) -> Any:
        result = self._function(name)(*_tensors(args))
        self.runs += 1
        return result

    def compile(self, key: Key, args: Sequence[Any]) -> bool:
        """Compile (by running it once) the program of `key`; False if XLA cannot, which
        sends the whole model to its TF graphs."""
        if self.failure is not None:
            return False
        if key in self._ready:
            return True
        began = time.perf_counter()
        try:
            self._function(key[0])(*_tensors(args))  # not counted in `runs`: no one's answer
        except Exception as exc:  # XLA's errors have no common class
            self.fail(key[0], exc)
            return False
        with self._lock:
            self._ready.add(key)
            self._pending.discard(key)
        log.debug(
            "%s: XLA compiled %s at batch %d in %.2f s",
            self._label,
            key[0],
            key[1][0][0],
            time.perf_counter() - began,
        )
        return True

    def fail(self, name: str, exc: BaseException) -> None:
        with self._lock:
            first = self.failure is None
            if first:
                reason = str(exc).strip().split("\n")[0][:400]  # XLA's first line says which op
                self.failure = f"XLA cannot compile {name}: {type(exc).__name__}: {reason}"
            self._pending.clear()
        if first and _mode == "auto":  # under "on" the model is refused, saying why
            log.warning("%s: served as TF graphs: %s", self._label, self.failure)

    def broke(self, key: Key, exc: BaseException) -> None:
        """A compiled program raised when run: its bucket goes back to the TF graph for
        good (which answers, or raises for the request alone as the batcher expects)."""
        with self._lock:
            self._ready.discard(key)
            self._broken.add(key)
        log.warning(
            "%s: XLA program %s at batch %d failed (%s: %s); that bucket runs as a TF graph",
            self._label,
            key[0],
            key[1][0][0],
            type(exc).__name__,
            str(exc).strip().split("\n")[0][:400],
        )

    def want(self, key: Key, args: Sequence[Any], priority: Priority = ON_DEMAND) -> None:
        """Queue `key` for the pool unless it is ready, queued or cannot be."""
        with self._lock:
            if self.failure is not None or key in self._ready or key in self._pending:
                return
            if key in self._broken:
                return
            if len(self._ready) + len(self._pending) >= MOST_PROGRAMS:
                return
            self._pending.add(key)
        _pool.submit(priority, lambda: self.compile(key, args))

    def _function(self, name: str) -> Any:
        concrete = self._concrete.get(name)
        if concrete is None:
            with self._lock:
                concrete = self._concrete.get(name)
                if concrete is None:
                    _, concrete = trace(self._table[name], jit_compile=True)
                    self._concrete[name] = concrete
        return concrete


class Pool:
    """Threads compiling XLA programs, at a lower CPU priority than those serving; work
    queued while the server starts waits for `start()`, like background.py's."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._queue: queue.PriorityQueue[tuple[int, int, Callable[[], object]]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._started = False
        self._stopping = False
        self._workers: list[threading.Thread] = []

    def submit(self, priority: Priority, work: Callable[[], object]) -> None:
        with self._lock:
            if self._stopping:
                return
            self._busy += 1
            self._queue.put((priority, next(self._order), work))
            if self._started and not self._workers:
                self._spawn()

    def start(self) -> None:
        with self._lock:
            self._started = True
            if not self._workers and self._busy:
                self._spawn()

    def wait(self, timeout: float | None = None) -> bool:
        """Until every queued compile is done (False: `timeout` passed first)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Drop what is queued, finish what is compiling (at exit: no TF call left
        running while the interpreter shuts down)."""
        with self._lock:
            self._stopping = True
            workers = list(self._workers)
        for _ in workers:
            self._queue.put((-1, next(self._order), lambda: None))
        for worker in workers:
            worker.join(timeout)

    def _spawn(self) -> None:
        count = max(1, min(self._threads, os.cpu_count() or 1))
        for i in range(count):
            thread = threading.Thread(target=self._run, name=f"xla-{i}", daemon=True)
            self._workers.append(thread)
            thread.start()

    def _run(self) -> None:
        lower_priority()
        while True:
            _, _, work = self._queue.get()
            if self._stopping:
                return
            try:
                work()
            except Exception:
                log.exception("XLA compile failed")
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()


_pool = Pool(POOL_THREADS)
atexit.register(_pool.stop)
start = _pool.start
wait = _pool.wait
