import asyncio
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from service.api.errors import status_of
from service.errors import ComputeFailed, NotReady, Overloaded
from service.inference.model.interface import GREEDY
from service.inference.serving.batcher import Batcher
from service.inference.serving.engine import BatchSettings, ModelEngine, PredictJob
from tests.fakes import model

pytestmark = pytest.mark.unit


class Fatal(BaseException):
    """Not an Exception: what used to end the batch worker for good."""


class Recorder:
    """A process function that signals `entered` and blocks until released, recording
    every call. Keys choose failures: "boom" raises an Exception, "fatal" a
    BaseException."""

    def __init__(self) -> None:
        self.calls: list[tuple[Hashable, list[Any]]] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, key: Hashable, payloads: Sequence[Any]) -> list[Any]:
        self.entered.set()
        assert self.release.wait(10), "the test never released the compute"
        self.calls.append((key, list(payloads)))
        if key == "boom":
            raise RuntimeError("compute failed")
        if key == "fatal":
            raise Fatal()
        return [(key, p * 10) for p in payloads]

    async def computing(self) -> None:
        """Returns once a batch is inside the compute (blocked until released)."""
        assert await asyncio.to_thread(self.entered.wait, 10), "no batch reached compute"


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the event loop until `condition` holds (a deadline, not a sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0)


@pytest.fixture
def executor() -> Any:
    with ThreadPoolExecutor(1) as pool:
        yield pool


async def test_jobs_queued_while_busy_merge_into_one_call_per_key(executor: Any) -> None:
    rec = Recorder()
    batcher = Batcher("t", rec, executor, max_rows=100, max_delay=0, max_queue_rows=100)
    first = asyncio.create_task(batcher.submit("a", 1, 0))
    await rec.computing()
    rest = [
        asyncio.create_task(batcher.submit(k, 1, i))
        for i, k in enumerate(["a", "b", "a", "b", "a"], start=1)
    ]
    await until(lambda: batcher.queued_rows == 5)
    rec.release.set()
    assert await first == ("a", 0)
    assert await asyncio.gather(*rest) == [("a", 10), ("b", 20), ("a", 30), ("b", 40), ("a", 50)]
    assert rec.calls == [("a", [0]), ("a", [1, 3, 5]), ("b", [2, 4])]
    assert batcher.stats.batches == 2 and batcher.stats.largest == 5
    await batcher.close()


async def test_max_rows_splits_batches(executor: Any) -> None:
    rec = Recorder()
    rec.release.set()
    batcher = Batcher("t", rec, executor, max_rows=3, max_delay=0.01, max_queue_rows=100)
    results = await asyncio.gather(*[batcher.submit("a", 2, i) for i in range(4)])
    assert results == [("a", i * 10) for i in range(4)]
    assert all(sum(2 for _ in payloads) <= 3 or len(payloads) == 1 for _, payloads in rec.calls)
    assert len(rec.calls) == 4  # 2 + 2 > 3: one job per batch
    await batcher.close()


async def test_full_queue_answers_overloaded(executor: Any) -> None:
    rec = Recorder()
    batcher = Batcher("t", rec, executor, max_rows=1, max_delay=0, max_queue_rows=2)
    running = asyncio.create_task(batcher.submit("a", 1, 0))
    await rec.computing()
    queued = [asyncio.create_task(batcher.submit("a", 1, i)) for i in (1, 2)]
    await until(lambda: batcher.queued_rows == 2)
    with pytest.raises(Overloaded) as info:
        await batcher.submit("a", 1, 3)
    assert status_of(info.value) == 503 and info.value.retry_after == 1
    rec.release.set()
    await asyncio.gather(running, *queued)
    await batcher.close()


async def test_jobs_queued_at_shutdown_answer_503_with_retry_after(executor: Any) -> None:
    """Every 503 says when to retry (the OpenAPI document promises Retry-After)."""
    rec = Recorder()
    batcher = Batcher("t", rec, executor, max_rows=1, max_delay=0, max_queue_rows=10)
    running = asyncio.create_task(batcher.submit("a", 1, 0))
    await rec.computing()
    queued = asyncio.create_task(batcher.submit("a", 1, 1))
    await until(lambda: batcher.queued_rows == 1)
    await batcher.close()
    with pytest.raises(Overloaded, match="shutting down") as info:
        await queued
    assert status_of(info.value) == 503 and info.value.retry_after == 1
    rec.release.set()
    running.cancel()


async def test_a_failing_group_fails_only_its_jobs(executor: Any) -> None:
    rec = Recorder()
    batcher = Batcher("t", rec, executor, max_rows=10, max_delay=0, max_queue_rows=10)
    blocker = asyncio.create_task(batcher.submit("a", 1, 0))
    await rec.computing()
    bad = asyncio.create_task(batcher.submit("boom", 1, 1))
    fatal = asyncio.create_task(batcher.submit("fatal", 1, 2))
    good = asyncio.create_task(batcher.submit("a", 1, 3))
    await until(lambda: batcher.queued_rows == 3)
    rec.release.set()
    await blocker
    assert await good == ("a", 30)
    with pytest.raises(RuntimeError, match="compute failed"):
        await bad
    with pytest.raises(ComputeFailed, match=r"group 'fatal' failed \(Fatal\)") as info:
        await fatal
    assert status_of(info.value) == 500
    # the worker lives on
    assert await batcher.submit("a", 1, 4) == ("a", 40)
    assert batcher.failure is None
    await batcher.close()


async def test_a_batch_raising_a_base_exception_fails_only_that_batch(executor: Any) -> None:
    """Even outside the per-group guard (here: the whole compute call raises)."""
    calls = 0

    def process(key: Hashable, payloads: Sequence[Any]) -> list[Any]:
        return [p for p in payloads]

    batcher = Batcher("t", process, executor, max_rows=10, max_delay=0, max_queue_rows=10)

    def run_groups(jobs: list[Any]) -> list[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Fatal()
        return Batcher._run_groups(batcher, jobs)

    batcher._run_groups = run_groups  # type: ignore[method-assign]
    with pytest.raises(ComputeFailed, match=r"batch failed \(Fatal\)"):
        await batcher.submit("a", 1, 7)
    assert await batcher.submit("a", 1, 8) == 8
    assert batcher.failure is None
    await batcher.close()


async def test_a_dead_worker_fails_fast_and_reports_why(executor: Any) -> None:
    """If the worker itself ends (a bug in the batcher), queued and later jobs are
    refused at once with 503 instead of waiting forever."""
    rec = Recorder()
    batcher = Batcher("t", rec, executor, max_rows=1, max_delay=0, max_queue_rows=10)

    def broken_count(jobs: list[Any]) -> None:
        raise Fatal()

    batcher._count = broken_count  # type: ignore[method-assign]
    first = asyncio.create_task(batcher.submit("a", 1, 0))
    with pytest.raises(NotReady) as info:
        await asyncio.wait_for(first, 10)
    assert status_of(info.value) == 503 and info.value.retry_after == 1
    assert batcher.failure is not None and "Fatal" in batcher.failure
    with pytest.raises(NotReady, match="batch worker stopped"):
        await asyncio.wait_for(batcher.submit("a", 1, 1), 10)
    assert rec.calls == []
    await batcher.close()


async def test_engine_batches_sessions_and_keeps_rows_apart(executor: Any) -> None:
    m = model(kind="step")
    engine = ModelEngine(m, executor, BatchSettings(max_rows=64))
    zeros = tuple(s[0] for s in m.spec.zero_states(1))
    offset = (np.full(3, 2.0, np.float32), np.zeros((2, 2), np.float32))
    jobs = [
        engine.run(zeros, [1, 2], False),
        engine.run(offset, [1, 2], True),
        engine.run(zeros, [5], False),
    ]
    a, b, c = await asyncio.gather(*jobs)
    assert a.outputs == [2, 3] and b.outputs == [4, 5] and c.outputs == [6]
    assert a.probabilities is None and b.probabilities is not None
    assert a.states[1][0, 0] == 2.0 and c.states[1][0, 0] == 1.0
    np.testing.assert_array_equal(b.states[0], offset[0])  # exact: the fake copies h as is
    await engine.close()


async def test_engine_predict_merges_requests_with_their_own_limits(executor: Any) -> None:
    m = model()
    engine = ModelEngine(m, executor, BatchSettings())
    first = PredictJob([[8], [1, 1]], 2, [GREEDY] * 2)
    out = await asyncio.gather(
        engine.predict(first, False), engine.predict(PredictJob([[8]], 4, [GREEDY]), True)
    )
    assert [r.outputs for r in out[0]] == [[1, 2], [3, 6]]
    assert [r.probabilities for r in out[0]] == [None, None]
    assert out[1][0].outputs == [1, 2, 3, 4]
    assert out[1][0].probabilities is not None and len(out[1][0].probabilities) == 4
    await engine.close()


async def test_a_poisoned_job_in_a_group_fails_alone(executor: Any) -> None:
    """The group's call raises because of one payload: it is run again job by job, so
    the others get their results and only the poisoned job its error."""

    def process(key: Hashable, payloads: Sequence[Any]) -> list[Any]:
        if 13 in payloads:
            raise RuntimeError("poisoned")
        return [p * 10 for p in payloads]

    rec = Recorder()
    blocker_batcher = Batcher("t", rec, executor, max_rows=10, max_delay=0, max_queue_rows=10)
    blocker = asyncio.create_task(blocker_batcher.submit("a", 1, 0))
    await rec.computing()  # the compute thread is busy: the jobs below queue together
    batcher = Batcher("t", process, executor, max_rows=10, max_delay=0, max_queue_rows=10)
    jobs = [asyncio.create_task(batcher.submit("a", 1, v)) for v in (1, 13, 2)]
    await until(lambda: batcher.queued_rows == 0 and batcher.stats.batches == 1)
    rec.release.set()
    await blocker
    results = await asyncio.gather(*jobs, return_exceptions=True)
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], RuntimeError)
    assert batcher.stats.batches == 1  # one batch; the retry is inside it
    await batcher.close()
    await blocker_batcher.close()
