"""Queue bounds through HTTP: a full queue answers 503 with Retry-After."""

import asyncio
import threading
from collections.abc import Sequence

import httpx
import numpy as np
import pytest

from service.app import create_app
from service.config import Settings
from service.inference.base import LoadedModel, States
from service.inference.registry import Registry
from tests.fakes import CounterCompute, model

pytestmark = pytest.mark.unit


class GatedCompute(CounterCompute):
    """Blocks every step until the test opens the gate."""

    gate = threading.Event()

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        self.gate.wait(10)
        return super().step(tokens, states)


async def test_full_queue_is_503_and_the_rest_complete() -> None:
    base = model()
    gated = LoadedModel(base.spec, GatedCompute(base.spec))
    settings = Settings(max_queue_rows=2, batch_max_rows=1)
    app = create_app(settings, registry=Registry({"counter": {1: gated}}))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):

        async def ask() -> httpx.Response:
            return await client.post("/predict", json={"inputs": [[4, 4]]})

        first = asyncio.create_task(ask())  # taken by the worker, blocked in compute
        await asyncio.sleep(0.05)
        queued = [asyncio.create_task(ask()) for _ in range(2)]  # fill the queue
        await asyncio.sleep(0.05)
        refused = await ask()
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "overloaded"
        assert "SERVICE_MAX_QUEUE_ROWS" in refused.json()["error"]["message"]
        GatedCompute.gate.set()
        answers = await asyncio.gather(first, *queued)
        assert [a.json()["outputs"] for a in answers] == [[[1, 2, 3]]] * 3
        stats = (await client.get("/v1/stats")).json()["counter/1 predict"]
        assert stats["jobs"] == 3 and stats["largest_batch"] == 1
