"""Isolation between clients on fakes: a poisoned row in a shared batch fails only its
own request (predict, streams, session generate and steps); decodes run in slices
that give the same answers as whole decodes; a short request admitted into a running
decode leaves as soon as it is done; queued work is taken round-robin by API key."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.config import Settings
from service.inference.model.interface import GREEDY, Decoding, LoadedModel, ModelSpec, States
from service.inference.model.registry import Registry
from service.inference.reference.sampling import row_seeds
from service.inference.serving.batcher import Batcher
from service.inference.serving.decoding import RowDecoded
from service.inference.serving.engine import BatchSettings, ModelEngine, PredictJob
from service.inference.serving.slicing import clock
from service.observability import request_context
from tests.fakes import CounterCompute, model
from tests.unit.test_batcher import Recorder, until
from tests.unit.test_batching_http import ControlledCompute

pytestmark = pytest.mark.unit

POISON_TOKEN = 6  # in a source: the encoder raises
POISON_STATE = 13.0  # in h: the decoder step raises


class PoisonCompute(ControlledCompute):
    """Raises for poisoned rows, which fails the whole batch they are in; every step
    waits for `gate` (so the test can hold the compute thread while work queues)."""

    def encode(self, sources: np.ndarray) -> States:
        if (sources == POISON_TOKEN).any():
            raise RuntimeError("poisoned source")
        return super().encode(sources)

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        result = super().step(tokens, states)  # waits for the gate
        if (states[0] == POISON_STATE).any():
            raise RuntimeError("poisoned state")
        return result


@dataclass
class Served:
    client: httpx.AsyncClient
    app: FastAPI
    computes: list[PoisonCompute]

    def queued(self) -> int:
        engines = self.app.state.runtime.engines.all()
        return sum(b.queued_rows for e in engines for b in e.batchers)

    async def holding(self) -> asyncio.Task[httpx.Response]:
        """A request that holds the compute thread inside a step until `release()`."""
        for c in self.computes:
            c.gate.clear()
            c.entered.clear()
        body = {"inputs": [[1, 1]], "max_steps": 3}
        task = asyncio.create_task(self.client.post("/v1/models/counter/predict", json=body))
        entered = self.computes[0].entered
        assert await asyncio.to_thread(entered.wait, 10), "the holder never reached compute"
        return task

    def release(self) -> None:
        for c in self.computes:
            c.gate.set()


@asynccontextmanager
async def serving() -> AsyncIterator[Served]:
    counter, stepper = model(), model("stepper", kind="step")
    computes = [PoisonCompute(counter.spec), PoisonCompute(stepper.spec)]
    registry = Registry(
        {
            "counter": {1: LoadedModel(counter.spec, computes[0])},
            "stepper": {1: LoadedModel(stepper.spec, computes[1])},
        }
    )
    app = create_app(Settings(), registry=registry)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield Served(client, app, computes)


async def _session(client: httpx.AsyncClient, body: dict[str, Any], poisoned: bool) -> str:
    sid: str = (await client.post("/v1/sessions", json=body)).json()["session_id"]
    if poisoned:
        h = [POISON_STATE] * 3
        r = await client.put(f"/v1/sessions/{sid}/state", json={"state": [h, [[0, 0], [0, 0]]]})
        assert r.status_code == 200
    return sid


async def _calls(served: Served, operation: str) -> tuple[list[Any], Any]:
    """Four good calls and one poisoned call of `operation`, as (method, path, json)."""
    client = served.client
    if operation in ("predict", "stream"):
        stream = {"stream": True} if operation == "stream" else {}
        good = [
            ("POST", "/v1/models/counter/predict", {"inputs": [[i, 2]], **stream}) for i in range(4)
        ]
        bad = ("POST", "/v1/models/counter/predict", {"inputs": [[POISON_TOKEN, 2]], **stream})
        return good, bad
    if operation == "generate":
        body: dict[str, Any] = {"model": "counter", "source": [1, 2]}
        ids = [await _session(client, body, False) for _ in range(4)]
        bad_id = await _session(client, body, True)
        g = {"max_steps": 3}
        return [("POST", f"/v1/sessions/{s}/generate", g) for s in ids], (
            "POST",
            f"/v1/sessions/{bad_id}/generate",
            g,
        )
    ids = [await _session(client, {"model": "stepper"}, False) for _ in range(4)]
    bad_id = await _session(client, {"model": "stepper"}, True)
    s = {"inputs": [1, 2, 3]}
    return [("POST", f"/v1/sessions/{i}/step", s) for i in ids], (
        "POST",
        f"/v1/sessions/{bad_id}/step",
        s,
    )


def _outputs(answer: httpx.Response) -> Any:
    """What must not change: a stream's whole text, a JSON answer's outputs."""
    if answer.headers["content-type"].startswith("text/event-stream"):
        return answer.text
    return answer.json()["outputs"]


@pytest.mark.parametrize("operation", ["predict", "stream", "generate", "step"])
async def test_a_poisoned_row_fails_only_its_own_request(operation: str) -> None:
    async with serving() as served:
        send = served.client.request
        twins, _ = await _calls(served, operation)  # answered alone, one at a time
        expected = [_outputs(await send(m, p, json=b)) for m, p, b in twins]
        good, bad = await _calls(served, operation)
        holder = await served.holding()
        tasks = [asyncio.create_task(send(m, p, json=b)) for m, p, b in [*good, bad]]
        await until(lambda: served.queued() == 5)  # all five wait for one batch
        served.release()
        *answers, poisoned = await asyncio.gather(*tasks)
        assert (await holder).status_code == 200
        assert [a.status_code for a in answers] == [200] * 4
        assert [_outputs(a) for a in answers] == expected
        if operation == "stream" and poisoned.status_code == 200:
            assert "event: error" in poisoned.text
        else:
            assert poisoned.status_code == 500, poisoned.text
            assert poisoned.json()["error"]["code"] in ("compute_failed", "internal_error")


# ---- slicing, on the engine --------------------------------------------------------


@pytest.fixture
def executor() -> Any:
    with ThreadPoolExecutor(1) as pool:
        yield pool


@pytest.fixture
def one_step_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every slice one step: the first slice's guess, and a target nothing meets."""
    monkeypatch.setattr(clock, "FIRST_SLICE_STEPS", 1)


def _sampled(n: int, seed: int) -> list[Decoding]:
    seeds = row_seeds(seed, n)
    return [Decoding("sample", temperature=0.7, top_p=0.9, seed=int(s), offset=3) for s in seeds]


@pytest.mark.parametrize("sample", [False, True])
async def test_sliced_decodes_equal_whole_ones(
    executor: Any, one_step_slices: None, sample: bool
) -> None:
    m = model("words", vocabulary=True, end_token=7)
    whole = ModelEngine(m, executor, BatchSettings(slice_seconds=0))
    sliced = ModelEngine(m, executor, BatchSettings(slice_seconds=1e-12))
    sources = [[1], [2, 3], [4, 5, 6], [3], [0, 0], [5, 5, 5]]
    decoding = _sampled(len(sources), 9) if sample else [GREEDY] * len(sources)
    jobs = [
        PredictJob(sources[:3], 9, decoding[:3]),
        PredictJob(sources[3:5], 4, decoding[3:5]),
        PredictJob(sources[5:], 1, decoding[5:]),  # fits in a slice: runs whole
    ]

    def answers(rows: list[list[RowDecoded]]) -> list[Any]:  # a predict keeps no state
        return [[(r.hypotheses, r.probabilities) for r in job] for job in rows]

    for probs in (False, True):
        a = await asyncio.gather(*[whole.predict(j, probs) for j in jobs])
        b = await asyncio.gather(*[sliced.predict(j, probs) for j in jobs])
        assert answers(a) == answers(b)  # numpy fakes: exact
    states = tuple(s[0] for s in m.spec.zero_states(1))
    for steps in (1, 5):
        one = await whole.generate(states, 2, steps, True, decoding[0])
        two = await sliced.generate(states, 2, steps, True, decoding[0])
        assert one.hypotheses == two.hypotheses and one.probabilities == two.probabilities
        for x, y in zip(one.states, two.states, strict=True):
            np.testing.assert_array_equal(x, y)
    assert sliced._predict.stats.batches > whole._predict.stats.batches  # it did slice
    await whole.close()
    await sliced.close()


def _same(a: Sequence[RowDecoded], b: Sequence[RowDecoded]) -> None:
    """Equal rows (numpy fakes: exact), states included."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.hypotheses == y.hypotheses and x.probabilities == y.probabilities
        assert len(x.states) == len(y.states)
        for p, q in zip(x.states, y.states, strict=True):
            np.testing.assert_array_equal(p, q)


async def test_sliced_runs_equal_whole_ones(executor: Any, one_step_slices: None) -> None:
    m = model("stepper", kind="step")
    whole = ModelEngine(m, executor, BatchSettings(slice_seconds=0))
    sliced = ModelEngine(m, executor, BatchSettings(slice_seconds=1e-12))
    jobs = [
        PredictJob([[1, 2, 3], [4], [5, 6]], 1, [GREEDY] * 3),
        PredictJob([[7] * 9], 1, [GREEDY]),
    ]
    offset = (np.full(3, 2.0, np.float32), np.ones((2, 2), np.float32))
    for probs in (False, True):
        a = await asyncio.gather(*[whole.predict(j, probs) for j in jobs])
        b = await asyncio.gather(*[sliced.predict(j, probs) for j in jobs])
        _same([r for rows in a for r in rows], [r for rows in b for r in rows])
        runs = [(offset, [1, 2, 3, 4, 5]), (offset, [6]), (offset, [0, 1])]
        one = await asyncio.gather(*[whole.run(s, t, probs) for s, t in runs])
        two = await asyncio.gather(*[sliced.run(s, t, probs) for s, t in runs])
        _same(one, two)
    assert sliced._run.stats.batches > whole._run.stats.batches  # it did slice
    await whole.close()
    await sliced.close()


class PermitCompute(CounterCompute):
    """Every decoder step takes a permit the test hands out."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.permits = threading.Semaphore(0)
        self.steps = 0

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        assert self.permits.acquire(timeout=10), "the test never gave a permit"
        self.steps += 1
        return super().step(tokens, states)


async def test_a_short_request_joins_a_running_decode_and_leaves_when_done(
    executor: Any, one_step_slices: None
) -> None:
    base = model()
    compute = PermitCompute(base.spec)
    engine = ModelEngine(
        LoadedModel(base.spec, compute), executor, BatchSettings(slice_seconds=1e-12)
    )
    long = asyncio.create_task(engine.predict(PredictJob([[1]], 20, [GREEDY]), False))
    compute.permits.release()
    await until(lambda: engine._predict.stats.batches == 2)  # its 2nd slice waits
    short = asyncio.create_task(engine.predict(PredictJob([[2]], 2, [GREEDY]), False))
    await until(lambda: engine._predict.queued_rows == 1)
    for _ in range(3):  # the long row's 2nd step, then two steps shared with the short
        compute.permits.release()
    rows = await asyncio.wait_for(short, 10)
    assert rows[0].outputs == [3, 6]  # as alone: (0 + 1 + sum [2]) % 8, then (3 + 1 + 2)
    assert not long.done()  # it was admitted beside the running decode, not after it
    assert compute.steps == 4
    for _ in range(16):
        compute.permits.release()
    assert len((await asyncio.wait_for(long, 10))[0].outputs) == 20
    await engine.close()


async def test_queued_jobs_are_taken_round_robin_by_api_key(executor: Any) -> None:
    rec = Recorder()
    batcher = Batcher("t", rec, executor, max_rows=2, max_delay=0, max_queue_rows=100)
    blocker = asyncio.create_task(batcher.submit("a", 1, 0))
    await rec.computing()

    def submit_as(owner: str, value: int) -> asyncio.Task[Any]:
        context = contextvars.copy_context()
        context.run(request_context.current.set, request_context.RequestContext("r", "", owner))
        return asyncio.create_task(batcher.submit("a", 1, value), context=context)

    flood = [submit_as("flood", v) for v in range(1, 7)]
    other = submit_as("other", 100)
    await until(lambda: batcher.queued_rows == 7)
    rec.release.set()
    await asyncio.gather(blocker, other, *flood)
    second_batch = rec.calls[1][1]
    assert second_batch == [1, 100]  # the other key's job does not wait behind the flood
    await batcher.close()
