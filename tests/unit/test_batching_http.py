"""The batcher through HTTP: a full queue answers 503 with Retry-After; a compute that
fails (with anything) fails only its own requests; a worker that ends anyway turns
readiness and liveness to 503 and its requests fail fast."""

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.config import Settings
from service.inference.model.interface import LoadedModel, ModelSpec, States
from service.inference.model.registry import Registry
from service.inference.serving.batcher import Batcher
from service.runtime import Runtime
from tests.fakes import CounterCompute, model
from tests.unit.test_batcher import Fatal, until

pytestmark = pytest.mark.unit


class ControlledCompute(CounterCompute):
    """Signals `entered` at every step and waits for `gate`; token 7 in a source raises
    Fatal (a BaseException, as a misbehaving model library might)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def encode(self, sources: np.ndarray) -> States:
        if (sources == 7).any():
            raise Fatal()
        return super().encode(sources)

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        return super().step(tokens, states)


@asynccontextmanager
async def serving(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI, ControlledCompute]]:
    base = model()
    compute = ControlledCompute(base.spec)
    app = create_app(settings, registry=Registry({"counter": {1: LoadedModel(base.spec, compute)}}))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield client, app, compute


def predict_batcher(app: FastAPI) -> Batcher:
    runtime: Runtime = app.state.runtime
    assert runtime.engines is not None
    return runtime.engines.all()[0].batchers[0]


async def test_full_queue_is_503_and_the_rest_complete() -> None:
    async with serving(Settings(max_queue_rows=2, batch_max_rows=1)) as (client, app, compute):
        compute.gate.clear()

        async def ask() -> httpx.Response:
            return await client.post("/predict", json={"inputs": [[4, 4]]})

        first = asyncio.create_task(ask())
        assert await asyncio.to_thread(compute.entered.wait, 10)  # blocked in compute
        queued = [asyncio.create_task(ask()) for _ in range(2)]  # fill the queue
        await until(lambda: predict_batcher(app).queued_rows == 2)
        refused = await ask()
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "overloaded"
        assert "SERVICE_MAX_QUEUE_ROWS" in refused.json()["error"]["message"]
        compute.gate.set()
        answers = await asyncio.gather(first, *queued)
        assert [a.json()["outputs"] for a in answers] == [[[1, 2, 3]]] * 3
        counters = (await client.get("/v1/stats")).json()["counter/1 predict"]
        assert counters["jobs"] == 3 and counters["largest_batch"] == 1
        assert counters["queued_rows"] == 0


async def test_a_base_exception_in_compute_fails_only_its_request() -> None:
    async with serving(Settings()) as (client, _, _):
        r = await client.post("/predict", json={"inputs": [[7, 1]]})
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "compute_failed"
        assert "Fatal" in r.json()["error"]["message"]
        r = await client.post("/predict", json={"inputs": [[4, 4]]})
        assert r.status_code == 200 and r.json()["outputs"] == [[1, 2, 3]]
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200


async def test_a_dead_worker_turns_health_503_and_requests_fail_fast() -> None:
    async with serving(Settings()) as (client, app, _):
        assert (await client.post("/predict", json={"inputs": [[4, 4]]})).status_code == 200
        predict = predict_batcher(app)
        worker = predict._worker
        assert worker is not None
        worker.cancel()  # the worker ends other than by close(): a bug would do the same
        await until(lambda: worker.done() and predict.failure is not None)

        for path in ("/readyz", "/healthz"):
            r = await client.get(path)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["status"] == "failed"
            assert "counter/1 predict" in r.json()["detail"]["failed"]
        r = await asyncio.wait_for(client.post("/predict", json={"inputs": [[4, 4]]}), 10)
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        assert "batch worker cancelled" in r.json()["error"]["message"]
        # the other operations of the model still work
        r = await client.post("/v1/sessions", json={"model": "counter", "source": [1, 2]})
        assert r.status_code == 201
