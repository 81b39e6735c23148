"""The background warm-up: one thread per process compiling queued graphs one at a time,
at a lower CPU priority than the threads serving requests.

Work queued while the server starts waits for `start()` (called once every model is
loaded), so it does not slow the loading it follows; work queued later (a model
reload) starts at once. A request needing a graph the thread has not reached compiles
it itself; one the thread is compiling waits for it (functions.Functions.compile).
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("service")

Work = Callable[[], None]
# 10 above the process, not 19: a request may wait for a graph this thread is compiling,
# and at 19 a busy machine would give the thread (so that request) ~1.5% of a core's
# time against a normal thread; at 10 about 10%.
NICE = 10


class Background:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[tuple[str, Work]] = deque()
        self._started = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def queue(self, model: str, work: list[Work]) -> None:
        with self._lock:
            self._queue.extend((model, w) for w in work)
            self._run_if_due()

    def start(self) -> None:
        """Begin the queued work, and any work queued from now on."""
        with self._lock:
            self._started = True
            self._run_if_due()

    def wait(self, timeout: float | None = None) -> bool:
        """Until the queue is done (False: `timeout` seconds passed first)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (thread := self._thread) is not None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            thread.join(left)
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the graph being compiled and stop (at exit: no TF call left running
        while the interpreter shuts down)."""
        with self._lock:
            self._stopping = True
            self._queue.clear()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run_if_due(self) -> None:
        if self._started and self._queue and self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="warm-up", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        lower_priority()
        began, done, models = time.perf_counter(), 0, set()
        while True:
            with self._lock:
                if not self._queue or self._stopping:
                    self._thread = None
                    stopped = self._stopping
                    break
                model, work = self._queue.popleft()
            try:
                work()
            except Exception:
                log.exception("background warm-up of %s failed (compiled on first use)", model)
            done += 1
            models.add(model)
        if stopped:
            return
        log.info(
            "background warm-up: %d graphs of %s in %.1f s",
            done,
            ", ".join(sorted(models)),
            time.perf_counter() - began,
        )
        # The traces live as long as their model: out of the collector's sight, as the
        # app does with what loading left (a collection now walks only what came after).
        gc.collect()
        gc.freeze()


def lower_priority() -> None:
    # Linux's setpriority takes a thread id and renices that thread alone; elsewhere the
    # id could name a process, so leave it.
    if sys.platform == "linux":
        try:
            thread = threading.get_native_id()
            nice = os.getpriority(os.PRIO_PROCESS, thread)
            os.setpriority(os.PRIO_PROCESS, thread, min(19, nice + NICE))
        except OSError:
            pass


_background = Background()
atexit.register(_background.stop)
queue = _background.queue
start = _background.start
wait = _background.wait
