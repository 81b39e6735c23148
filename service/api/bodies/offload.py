"""CPU-bound request work off the event loop: a large body is inflated, parsed and read,
and a large answer serialised, in a worker thread, so one client's upload never stalls
the others' requests (nor /healthz). Small ones stay on the loop, where a thread hop
would cost more than the work.

One such thread at a time: the work holds the GIL for much of its run, and every other
thread that holds it is one more the event loop must wait behind to run at all (ten at
once made /healthz wait 0.75 s). Large requests queue for it in arrival order."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import anyio.to_thread
from anyio import CapacityLimiter
from anyio.lowlevel import RunVar

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
# Bytes of request body (inflated) parsed on the event loop: ~0.5 ms of pydantic at
# the most; a larger body is parsed in the worker thread.
SMALL_BODY = 32 * 1024
# Values in an answer serialised on the event loop (~0.1 µs each).
SMALL_ANSWER = 4096
_worker: RunVar[CapacityLimiter] = RunVar("request_cpu_worker")


def _one_thread() -> CapacityLimiter:
    """The limiter of this event loop (one per loop: tests run several)."""
    try:
        return _worker.get()
    except LookupError:
        limiter = CapacityLimiter(1)
        _worker.set(limiter)
        return limiter


async def off_loop(inline: bool, work: Callable[[*Ts], T], *args: *Ts) -> T:
    """`work(*args)`: here if `inline`, else in the worker thread (context variables,
    such as the request id in log lines, go with it)."""
    if inline:
        return work(*args)
    return await anyio.to_thread.run_sync(work, *args, limiter=_one_thread())
