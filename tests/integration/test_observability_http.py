"""Metrics, request ids and JSON logs on a real server process: /metrics scraped after
real predict, session and reload calls, and every line the server wrote, start-up and
shutdown included, read back as JSON."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from service.sessions.store import log_id
from tests.harness import STORE
from tests.harness.early import Plan, Prepared
from tests.integration.conftest import EARLY

pytestmark = pytest.mark.integration

SOURCES = [[20, 36, 40, 10, 34, 28], [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]]


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(found: list[Sample], name: str, **labels: str) -> float:
    matching = [s for s in found if s.name == name and labels.items() <= s.labels.items()]
    assert matching, f"no sample {name} {labels}"
    return sum(s.value for s in matching)


def two_models(directory: Path) -> Path:
    store = directory / "store"
    for name in ("reverse", "memory"):
        shutil.copytree(STORE / name / "1", store / name / "1")
    return store


ENV = {
    "SERVICE_LOG_FORMAT": "json",
    "SERVICE_ACCESS_LOG": "true",
    "SERVICE_LOG_LEVEL": "info",
    "SERVICE_MODEL_POLL_SECONDS": "0",
}
EARLY.plan("observed", Plan(ENV, store=two_models))


@pytest.fixture
def observed() -> Iterator[Prepared]:
    """A server of its own (its metrics and log are this test's alone), on a store of
    its own."""
    try:
        yield EARLY.prepared("observed")
    finally:
        EARLY.release("observed")


def test_metrics_and_json_logs_of_a_real_server(observed: Prepared) -> None:
    store, server, url = observed.store, observed.server, observed.server.url
    sent: dict[str, tuple[str, str]] = {}  # request id -> (method, path as logged)
    with httpx.Client(base_url=url, timeout=60) as http:

        def call(method: str, path: str, rid: str, **kwargs: Any) -> httpx.Response:
            r = http.request(method, path, headers={"X-Request-ID": rid}, **kwargs)
            assert r.headers["x-request-id"] == rid
            sent[rid] = (method, path)
            return r

        def predict(n: int) -> None:
            r = call("POST", "/predict", f"predict-{n}", json={"inputs": SOURCES})
            assert r.status_code == 200 and r.json()["outputs"][0] == [40, 36, 20]

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(predict, range(24)))
        sids = []
        for n in range(3):
            r = call("POST", "/v1/sessions", f"create-{n}", json={"model": "memory"})
            assert r.status_code == 201
            sids.append(r.json()["session_id"])
        for n, sid in enumerate(sids):
            r = call("POST", f"/v1/sessions/{sid}/step", f"step-{n}", json={"inputs": [3, 0]})
            assert r.json()["outputs"][1] == 1
        assert call("DELETE", f"/v1/sessions/{sids[0]}", "delete-0").status_code == 204
        assert call("GET", "/no/such/path", "missing").status_code == 404
        # a new version and a broken one, loaded by a reload: its log lines are
        # written during that request
        shutil.copytree(STORE / "memory" / "1", store / "memory" / "2")
        shutil.copytree(STORE / "memory" / "1", store / "memory" / "3")
        (store / "memory" / "3" / "step.keras").write_bytes(b"not a keras file")
        report = call("POST", "/v1/admin/reload", "reload").json()
        assert report["loaded"] == [{"model": "memory", "version": "2"}] and report["failed"]
        found = samples(call("GET", "/metrics", "scrape").text)
    step = {"route": "/v1/sessions/{session_id}/step", "model": "memory", "status": "200"}
    assert value(found, "seq2seq_http_requests_total", **step) == 3
    assert value(found, "seq2seq_http_requests_total", route="/predict", model="reverse") == 24
    assert value(found, "seq2seq_http_requests_total", route="unmatched", status="404") == 1
    rows = {"model": "reverse", "operation": "predict"}
    assert value(found, "seq2seq_batch_rows_count", **rows) >= 1
    assert value(found, "seq2seq_batch_rows_sum", **rows) == 24 * len(SOURCES)
    assert value(found, "seq2seq_batch_queue_seconds_count", **rows) == 24
    assert value(found, "seq2seq_batch_rows_sum", model="memory", operation="step") == 3
    assert value(found, "seq2seq_decode_steps_total", model="reverse") == 24 * 3 * 3
    assert value(found, "seq2seq_decode_steps_total", model="memory") == 6
    assert value(found, "seq2seq_active_sessions") == len(sids) - 1
    assert value(found, "seq2seq_session_store_duration_seconds_count", operation="save") == 3
    assert value(found, "seq2seq_model_loaded", model="memory", version="2") == 1
    assert value(found, "seq2seq_model_loaded", model="memory", version="3") == 0
    assert value(found, "seq2seq_model_load_seconds", model="reverse", version="1") > 0
    assert value(found, "seq2seq_model_load_seconds", model="memory", version="2") > 0
    assert not any(sid in s.labels.values() for s in found for sid in sids)
    server.process.terminate()  # the shutdown's lines are JSON too
    assert server.process.wait(timeout=30) == 0
    output = server.output()
    lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert sids[0] not in output and log_id(sids[0]) in output
    access = [line for line in lines if line["logger"] == "service.access"]
    assert all(line["request_id"] for line in access)  # readiness polls included
    ours = {line["request_id"]: line for line in access if line["request_id"] in sent}
    assert set(ours) == set(sent)
    for rid, (method, path) in sent.items():
        line = ours[rid]
        assert line["method"] == method and line["duration_ms"] > 0, line
        logged = (
            path
            if "/v1/sessions/" not in path
            else path.replace(path.split("/")[3], log_id(path.split("/")[3]))
        )
        assert line["path"] == logged and line["client"].startswith("127.0.0.1:")
    assert ours["step-1"]["route"] == "/v1/sessions/{session_id}/step"
    assert ours["step-1"]["model"] == "memory" and ours["predict-3"]["model"] == "reverse"
    during_reload = [line["message"] for line in lines if line.get("request_id") == "reload"]
    assert any(m.startswith("loaded memory version 2") for m in during_reload)
    assert any(m.startswith("refused memory version 3") for m in during_reload)
    startup = next(i for i, line in enumerate(lines) if line["message"].startswith("ready:"))
    assert all("request_id" not in line for line in lines[: startup + 1])
    assert any(line["message"].startswith("shutting down") for line in lines)
    (finished,) = [line for line in lines if line["message"].startswith("Finished server")]
    assert finished["logger"] == "uvicorn.error" and "request_id" not in finished
