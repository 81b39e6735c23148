"""GET /metrics through HTTP (in-process ASGI) on numpy fakes, read back with
Prometheus's own parser."""

import math
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from service.app import create_app
from service.config import Settings
from service.errors import StoreUnavailable
from service.inference.model.registry import Registry
from service.sessions.memory import MemorySessionStore
from service.sessions.store import Replay, StoredSession
from tests import fakes

pytestmark = pytest.mark.unit

KEY = "metrics-key-0123456789"
TEMPLATES = {
    "/predict",
    "/v1/models/{name}/predict",
    "/v1/models/{name}",
    "/v1/sessions",
    "/v1/sessions/{session_id}",
    "/v1/sessions/{session_id}/step",
    "/metrics",
    "unmatched",
}


class Scrape:
    def __init__(self, client: TestClient, **headers: str):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain; version=")
        self.text = r.text
        self.samples: list[Sample] = [
            s for family in text_string_to_metric_families(r.text) for s in family.samples
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum over the samples called `name` whose labels include `labels`."""
        found = [s for s in self.samples if s.name == name and labels.items() <= s.labels.items()]
        assert found, f"no sample {name} {labels}"
        return sum(s.value for s in found)

    def has(self, name: str, **labels: str) -> bool:
        return any(s.name == name and labels.items() <= s.labels.items() for s in self.samples)

    def label_values(self, name: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == name}


def app_client(store: Any = None, registry: Registry | None = None, **settings: Any) -> TestClient:
    config = Settings(**settings)
    store = store or MemorySessionStore(config.session_ttl_seconds, config.max_sessions)
    return TestClient(create_app(config, registry=registry or fakes.registry(), store=store))


def test_requests_are_counted_by_method_route_template_model_and_status(
    client: TestClient,
) -> None:
    for _ in range(2):
        r = client.post("/v1/models/counter/predict", json={"inputs": [[1, 2]]})
        assert r.status_code == 200
    assert client.post("/predict", json={"model": "words", "inputs": [["a"]]}).status_code == 200
    assert client.post("/v1/models/nosuch/predict", json={"inputs": [[1]]}).status_code == 404
    sid = client.post("/v1/sessions", json={"model": "stepper"}).json()["session_id"]
    assert client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1, 2]}).status_code == 200
    assert client.get(f"/v1/sessions/{sid}").status_code == 200
    assert client.get("/v1/models/counter").status_code == 200
    m = Scrape(client)
    name = "seq2seq_http_requests_total"
    predict = {"method": "POST", "route": "/v1/models/{name}/predict", "status": "200"}
    assert m.value(name, **predict, model="counter") == 2
    assert m.value(name, route="/predict", model="words", status="200") == 1
    # a model the registry does not serve is no label value
    assert m.value(name, route="/v1/models/{name}/predict", model="", status="404") == 1
    assert m.value(name, route="/v1/sessions", model="stepper", status="201") == 1
    step = "/v1/sessions/{session_id}/step"
    assert m.value(name, method="POST", route=step, model="stepper", status="200") == 1
    assert m.value(name, method="GET", route="/v1/sessions/{session_id}", model="stepper") == 1
    assert m.value(name, route="/v1/models/{name}", model="counter") == 1
    assert m.label_values(name, "route") <= TEMPLATES
    assert m.label_values(name, "model") <= {"", "counter", "words", "stepper"}
    assert sid not in m.text and "nosuch" not in m.text
    latency = "seq2seq_http_request_duration_seconds"
    assert m.value(latency + "_count", **predict, model="counter") == 2
    assert 0 < m.value(latency + "_sum", **predict, model="counter") < 5


def test_an_unknown_path_adds_no_label_value(client: TestClient) -> None:
    for path in ("/nope/1", "/nope/2", "/v1/sessions/abc/step/extra", "/../../etc/passwd"):
        assert client.get(path).status_code == 404
    Scrape(client)  # the scrape itself counts from now on
    before = Scrape(client).label_values("seq2seq_http_requests_total", "route")
    for path in ("/nope/3", "/v1/other"):
        assert client.get(path).status_code == 404
    m = Scrape(client)
    assert m.label_values("seq2seq_http_requests_total", "route") == before
    assert m.value("seq2seq_http_requests_total", route="unmatched", status="404") == 6
    assert "nope" not in m.text and "abc" not in m.text and "passwd" not in m.text


def test_a_method_outside_http_s_own_is_labelled_other(client: TestClient) -> None:
    assert client.request("BREW", "/v1/models").status_code == 405
    m = Scrape(client)
    assert m.value("seq2seq_http_requests_total", method="other", route="/v1/models") == 1
    assert "BREW" not in m.text


def test_histograms_have_their_buckets_and_batching_is_measured(client: TestClient) -> None:
    r = client.post("/v1/models/counter/predict", json={"inputs": [[1], [2], [3]], "max_steps": 2})
    assert r.status_code == 200
    sid = client.post("/v1/sessions", json={"model": "stepper"}).json()["session_id"]
    assert client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1, 2, 3]}).status_code == 200
    m = Scrape(client)
    labels = {"route": "/v1/models/{name}/predict", "model": "counter", "status": "200"}
    buckets = [
        s
        for s in m.samples
        if s.name == "seq2seq_http_request_duration_seconds_bucket"
        and labels.items() <= s.labels.items()
    ]
    bounds = [s.labels["le"] for s in buckets]
    assert bounds[0] == "0.0005" and bounds[-1] == "+Inf" and len(bounds) == 15
    assert [s.value for s in buckets] == sorted(s.value for s in buckets)  # cumulative
    assert buckets[-1].value == 1
    # 3 sequences, one graph call; 1 session row
    rows = {"model": "counter", "operation": "predict"}
    assert m.value("seq2seq_batch_rows_count", **rows) == 1
    assert m.value("seq2seq_batch_rows_sum", **rows) == 3
    assert m.value("seq2seq_batch_rows_bucket", **rows, le="2.0") == 0
    assert m.value("seq2seq_batch_rows_bucket", **rows, le="4.0") == 1
    assert m.value("seq2seq_batch_rows_sum", model="stepper", operation="step") == 1
    assert m.value("seq2seq_batch_queue_seconds_count", **rows) == 1
    assert 0 <= m.value("seq2seq_batch_queue_seconds_sum", **rows) < 1
    assert m.value("seq2seq_batch_queue_seconds_bucket", **rows, le="+Inf") == 1
    # decoder steps: 3 rows x 2 steps, then 3 inputs stepped
    assert m.value("seq2seq_decode_steps_total", model="counter") == 6
    assert m.value("seq2seq_decode_steps_total", model="stepper") == 3


def test_the_active_sessions_gauge_and_store_latency(client: TestClient) -> None:
    sids = [client.post("/v1/sessions", json={"model": "stepper"}).json()["session_id"]]
    sids.append(client.post("/v1/sessions", json={"model": "stepper"}).json()["session_id"])
    assert Scrape(client).value("seq2seq_active_sessions") == 2
    assert client.delete(f"/v1/sessions/{sids[0]}").status_code == 204
    assert client.post(f"/v1/sessions/{sids[1]}/step", json={"inputs": [1]}).status_code == 200
    m = Scrape(client)
    assert m.value("seq2seq_active_sessions") == 1
    store = "seq2seq_session_store_duration_seconds_count"
    assert m.value(store, operation="create") == 2
    assert m.value(store, operation="delete") == 1
    assert m.value(store, operation="lock") == 2  # delete and step
    assert m.value(store, operation="get") == 1 and m.value(store, operation="save") == 1
    assert not m.has("seq2seq_session_store_errors_total")


class FlakyStore(MemorySessionStore):
    """Saves fail while `down`; counting fails too."""

    down = False

    async def save(
        self, session: StoredSession, remember: tuple[str, Replay] | None = None
    ) -> StoredSession:
        if self.down:
            raise StoreUnavailable("session store unavailable")
        return await super().save(session, remember)

    async def count(self) -> int:
        if self.down:
            raise StoreUnavailable("session store unavailable")
        return await super().count()


def test_store_errors_are_counted_by_operation_and_a_scrape_survives_them() -> None:
    store = FlakyStore(1800, max_sessions=1)
    with app_client(store) as client:
        sid = client.post("/v1/sessions", json={"model": "stepper"}).json()["session_id"]
        assert client.post("/v1/sessions", json={"model": "stepper"}).status_code == 429
        store.down = True
        assert client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1]}).status_code == 503
        m = Scrape(client)
        errors = "seq2seq_session_store_errors_total"
        assert m.value(errors, operation="save", error="session_store_unavailable") == 1
        assert m.label_values(errors, "operation") == {"save"}  # a refusal at the cap is none
        assert math.isnan(m.value("seq2seq_active_sessions"))  # unknown, not stale
        store.down = False
        assert Scrape(client).value("seq2seq_active_sessions") == 1


def test_readiness_says_degraded_when_the_store_cannot_count_its_sessions() -> None:
    """A store that answers its health check but cannot count (a Redis Cluster shard
    down: its buckets unreadable) leaves the replica ready, degraded, not a 503."""
    store = FlakyStore(1800, max_sessions=10)
    with app_client(store) as client:
        store.down = True
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "degraded"
        assert ready.json()["detail"]["session_store"] == "unavailable"
        store.down = False
        assert client.get("/readyz").json()["detail"]["sessions"] == 0


def test_model_versions_loaded_failed_and_gone() -> None:
    registry = fakes.registry()
    models = registry.models()
    models["counter"][1] = replace(models["counter"][1], load_seconds=0.25)
    registry.update(models)
    with app_client(registry=registry) as client:
        m = Scrape(client)
        assert m.value("seq2seq_model_loaded", model="counter", version="1") == 1
        assert m.value("seq2seq_model_loaded", model="counter", version="2") == 1
        assert m.value("seq2seq_model_loaded", model="stepper", version="1") == 1
        assert m.value("seq2seq_model_load_seconds", model="counter", version="1") == 0.25
        # what a reload does: version 2 removed, version 3 refused, a directory refused
        del models["counter"][2]
        refused = {"counter": [("3", "broken")], "ghost": [(None, "no model.json")]}
        registry.update(models, refused)
        m = Scrape(client)
        assert m.value("seq2seq_model_loaded", model="counter", version="3") == 0
        assert not m.has("seq2seq_model_loaded", model="counter", version="2")
        assert not m.has("seq2seq_model_loaded", model="ghost")
        assert m.value("seq2seq_model_loaded", model="counter", version="1") == 1


def test_metrics_need_a_key_like_stats() -> None:
    with app_client(api_keys=f"ops:{KEY}") as client:
        assert client.get("/metrics").status_code == 401
        refused = client.post("/v1/sessions/some-secret-id/step", json={"inputs": [1]})
        assert refused.status_code == 401
        m = Scrape(client, **{"X-API-Key": KEY})
        step = "/v1/sessions/{session_id}/step"  # matched although refused before routing
        assert m.value("seq2seq_http_requests_total", route=step, status="401") == 1
        assert m.value("seq2seq_http_requests_total", route="/metrics", status="401") == 1
        assert "some-secret-id" not in m.text
    with app_client(api_keys=f"ops:{KEY}", protect_stats=False) as client:
        assert client.get("/metrics").status_code == 200


def test_every_app_has_its_own_registry() -> None:
    with app_client() as first, app_client() as second:
        assert first.post("/v1/models/counter/predict", json={"inputs": [[1]]}).status_code == 200
        assert Scrape(first).has("seq2seq_http_requests_total", model="counter")
        assert not Scrape(second).has("seq2seq_http_requests_total", model="counter")
