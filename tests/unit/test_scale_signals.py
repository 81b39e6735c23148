"""The per-pod signals to scale on, in /metrics (real HTTP, uvicorn in a thread, a fake
model whose decoder steps wait for permits from the test): rows queued per model and
operation, requests in flight, and how full the batches were since the last scrape."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.config import Settings
from service.inference.model.interface import LoadedModel
from service.inference.model.registry import Registry
from tests.fakes import model
from tests.harness.threaded import serving_in_thread
from tests.unit.test_streaming_fakes import WAIT, PermittedCompute

pytestmark = pytest.mark.unit
MAX_ROWS = 8


def scrape(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def predict_key(name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, (("model", "counter"), ("operation", "predict"))


def until(condition: Callable[[], bool]) -> None:
    """Scrape until `condition` holds (a condition the server reaches on its own)."""
    for _ in range(1000):
        if condition():
            return
    raise AssertionError("the server never reached the condition")


def test_queued_rows_requests_in_flight_and_batch_fill() -> None:
    base = model()
    compute = PermittedCompute(base.spec)
    registry = Registry({"counter": {1: LoadedModel(base.spec, compute)}})
    settings = Settings(access_log=False, batch_max_rows=MAX_ROWS)
    app = create_app(settings, registry=registry)
    answers: list[int] = []

    def predict(url: str, rows: int) -> None:
        body = {"inputs": [[1, 2]] * rows, "max_steps": 1}
        r = httpx.post(f"{url}/predict", json=body, timeout=WAIT)
        answers.append(r.status_code)

    with serving_in_thread(app) as (url, _), httpx.Client(base_url=url, timeout=WAIT) as client:
        compute.armed = True
        try:
            first = threading.Thread(target=predict, args=(url, 1))
            first.start()
            assert compute.started.acquire(timeout=WAIT)  # its batch runs, held at a step
            later = [threading.Thread(target=predict, args=(url, n)) for n in (2, 3)]
            for thread in later:
                thread.start()
            queued = predict_key("seq2seq_queued_rows")
            until(lambda: scrape(client)[queued] == 5)  # 2 + 3 rows wait for a batch
            during = scrape(client)
            # the three predicts and this scrape
            assert during[("seq2seq_http_requests_in_flight", ())] == 4
            # no batch began since the scrape before (the first one's is still running)
            assert math.isnan(during[predict_key("seq2seq_batch_fill_ratio")])
        finally:
            compute.allow(1000)
        for thread in [first, *later]:
            thread.join(WAIT)
        assert answers == [200, 200, 200]
        after = scrape(client)
        assert after[queued] == 0
        assert after[("seq2seq_http_requests_in_flight", ())] == 1  # this scrape
        # the two that queued ran together: one batch of 5 rows since the last scrape
        assert after[predict_key("seq2seq_batch_fill_ratio")] == 5 / MAX_ROWS
        # nothing ran since: no batches to average
        assert math.isnan(scrape(client)[predict_key("seq2seq_batch_fill_ratio")])
