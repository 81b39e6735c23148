import asyncio
import threading
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from service.errors import Overloaded
from service.inference.batcher import Batcher
from service.inference.engine import BatchSettings, ModelEngine
from tests.fakes import model

pytestmark = pytest.mark.unit


class Recorder:
    """A process function that blocks until released, recording every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Hashable, list[Any]]] = []
        self.release = threading.Event()

    def __call__(self, key: Hashable, payloads: Sequence[Any]) -> list[Any]:
        self.release.wait(5)
        self.calls.append((key, list(payloads)))
        if key == "boom":
            raise RuntimeError("compute failed")
        return [(key, p * 10) for p in payloads]


@pytest.fixture
def executor() -> Any:
    with ThreadPoolExecutor(1) as pool:
        yield pool


async def test_jobs_queued_while_busy_merge_into_one_call_per_key(executor: Any) -> None:
    rec = Recorder()
    batcher = Batcher("t", rec, executor, max_rows=100, max_delay=0, max_queue_rows=100)
    first = asyncio.create_task(batcher.submit("a", 1, 0))
    await asyncio.sleep(0.05)  # first batch is now computing (blocked)
    rest = [
        asyncio.create_task(batcher.submit(k, 1, i))
        for i, k in enumerate(["a", "b", "a", "b", "a"], start=1)
    ]
    await asyncio.sleep(0.05)
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
    await asyncio.sleep(0.05)
    queued = [asyncio.create_task(batcher.submit("a", 1, i)) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(Overloaded) as info:
        await batcher.submit("a", 1, 3)
    assert info.value.status == 503 and info.value.headers == {"Retry-After": "1"}
    rec.release.set()
    await asyncio.gather(running, *queued)
    await batcher.close()


async def test_a_failing_group_fails_only_its_jobs(executor: Any) -> None:
    rec = Recorder()
    batcher = Batcher("t", rec, executor, max_rows=10, max_delay=0, max_queue_rows=10)
    blocker = asyncio.create_task(batcher.submit("a", 1, 0))
    await asyncio.sleep(0.05)
    bad = asyncio.create_task(batcher.submit("boom", 1, 1))
    good = asyncio.create_task(batcher.submit("a", 1, 2))
    await asyncio.sleep(0.01)
    rec.release.set()
    await blocker
    assert await good == ("a", 20)
    with pytest.raises(RuntimeError, match="compute failed"):
        await bad
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
    np.testing.assert_array_equal(b.states[0], offset[0])
    await engine.close()


async def test_engine_predict_merges_requests_with_their_own_limits(executor: Any) -> None:
    m = model()
    engine = ModelEngine(m, executor, BatchSettings())
    out = await asyncio.gather(
        engine.predict([[8], [1, 1]], 2, False), engine.predict([[8]], 4, True)
    )
    assert out[0] == ([[1, 2], [3, 6]], None)
    assert out[1][0] == [[1, 2, 3, 4]] and out[1][1] is not None and len(out[1][1][0]) == 4
    await engine.close()
