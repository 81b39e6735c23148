"""The compute thread(s), counting the calls that wait for one and noting who sent
calls lately.

Every batcher of every model sends its graph calls here; a long decode asks, between
its slices, whether anyone else is using the compute thread (`busy_besides`), and
runs shorter slices while they are. "Lately" and not just "now": a client's next
request is usually on its way while its last answer is being sent, and a slice
sized for an empty queue would make it wait.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

LATELY = 0.05  # seconds


class ComputeExecutor(ThreadPoolExecutor):
    def __init__(self, threads: int):
        super().__init__(threads, thread_name_prefix="compute")
        self._lock = threading.Lock()
        self._waiting = 0
        self._sent: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    @property
    def waiting(self) -> int:
        """Calls submitted and not yet started."""
        return self._waiting

    def note(self, sender: Any) -> None:
        """`sender` (a batcher) is about to send a call (on the event loop)."""
        self._sent[sender] = time.monotonic()

    def busy_besides(self, senders: Collection[Any]) -> bool:
        """A call waits, or a sender other than `senders` sent one lately."""
        if self._waiting > 0:
            return True
        lately = time.monotonic() - LATELY
        try:
            return any(t > lately for s, t in self._sent.items() if s not in senders)
        except RuntimeError:  # changed while read (another thread): call it busy
            return True

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
