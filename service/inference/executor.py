"""The compute thread(s), counting the calls that wait for one.

Every batcher of every model sends its graph calls here; a long decode reads
`waiting` between its slices and runs shorter ones while other work waits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class ComputeExecutor(ThreadPoolExecutor):
    def __init__(self, threads: int):
        super().__init__(threads, thread_name_prefix="compute")
        self._lock = threading.Lock()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Calls submitted and not yet started."""
        return self._waiting

    def _started(self) -> bool:
        with self._lock:
            self._waiting -= 1
        return True

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self._waiting += 1
        started = False

        def call() -> Any:
            nonlocal started
            started = self._started()
            return fn(*args, **kwargs)

        def never_started(_: Future[Any]) -> None:
            if not started:  # cancelled in the queue (shutdown)
                self._started()

        future = super().submit(call)
        future.add_done_callback(never_started)
        return future
