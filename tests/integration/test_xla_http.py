"""SERVICE_XLA over HTTP: `GET /v1/models/{name}` says which compiler runs a model and
which XLA buckets are ready; a server running XLA (on, buckets compiled before ready)
answers exactly as one running TF graphs (off), for greedy, beam, sampled decodes and
session steps; a model XLA cannot compile is served as TF graphs under auto and refused
at start-up under on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import xla_store
from tests.harness import running, start_server
from tests.harness.early import Plan
from tests.harness.http import HTTP
from tests.integration.conftest import EARLY
from tests.integration.test_warmup import same

pytestmark = pytest.mark.integration

# batches of at most 4 rows: buckets 1, 2, 4; each compiled when a request meets it
# (SERVICE_WARMUP=all, which compiles the planned ones before ready: test_xla.py)
XLA_ON = {"SERVICE_XLA": "on", "SERVICE_WARMUP": "lazy", "SERVICE_BATCH_MAX_ROWS": "4"}
EARLY.plan("xla_on", Plan(XLA_ON, fixture="xla_url"))
EARLY.plan(
    "xla_fallback",
    Plan({"SERVICE_XLA": "auto", "SERVICE_WARMUP": "all"}, store=xla_store.write),
)
DATES = ["21 Nov 2026", "11/21/26", "2026-11-21"]  # 3 rows: padded to the bucket of 4


@pytest.fixture(scope="module")
def xla_url() -> Iterator[str]:
    try:
        yield EARLY.server("xla_on").url
    finally:
        EARLY.release("xla_on")


@pytest.fixture(scope="module")
def graph_url(server_url: str) -> str:
    """SERVICE_XLA=off: the shared server (test servers run no XLA, tests/harness)."""
    return server_url


@pytest.fixture(scope="module")
def xla_fallback() -> Iterator[str]:
    try:
        yield EARLY.server("xla_fallback").url
    finally:
        EARLY.release("xla_fallback")


def info(url: str, model: str) -> dict[str, Any]:
    r = HTTP.get(f"{url}/v1/models/{model}", timeout=30)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = HTTP.post(f"{url}{path}", json=body, timeout=120)
    assert r.status_code in (200, 201), r.text
    answer: dict[str, Any] = r.json()
    return answer


def compiled(url: str, model: str) -> dict[str, Any]:
    """The model's buckets once none is pending (the pool compiled what requests met)."""
    deadline = time.monotonic() + 300
    while (buckets := info(url, model)["buckets"])["pending"]:
        assert time.monotonic() < deadline, f"{model}: still compiling {buckets['pending']}"
        time.sleep(0.1)  # polls the server's own account of its compiles
    return buckets


def test_a_server_on_default_settings_runs_xla(default_server: str) -> None:
    answer = info(default_server, "reverse")
    assert answer["compiler"] == "xla"
    buckets = answer["buckets"]
    assert buckets["batch_sizes"] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    for state in ("ready", "pending"):
        for sizes in buckets[state].values():
            assert set(sizes) <= set(buckets["batch_sizes"])


def test_xla_off_says_graph(graph_url: str) -> None:
    answer = info(graph_url, "reverse")
    assert (answer["compiler"], answer["buckets"]) == ("graph", None)


def test_xla_on_compiles_the_buckets_requests_meet(xla_url: str) -> None:
    answer = info(xla_url, "memory")
    assert answer["compiler"] == "xla"
    assert answer["buckets"]["batch_sizes"] == [1, 2, 4]
    sid = post(xla_url, "/v1/sessions", {"model": "memory"})["session_id"]
    assert post(xla_url, f"/v1/sessions/{sid}/step", {"inputs": [3]})["outputs"] == [0]
    assert 1 in compiled(xla_url, "memory")["ready"]["run"]  # one session, one value


def session_answers(url: str) -> list[dict[str, Any]]:
    """memory stepped one value per request (the planned bucket), then three at once."""
    sid = post(url, "/v1/sessions", {"model": "memory"})["session_id"]
    answers = [post(url, f"/v1/sessions/{sid}/step", {"inputs": [v]}) for v in (4, 0, 1, 2)]
    answers.append(post(url, f"/v1/sessions/{sid}/step", {"inputs": [3, 0, 1]}))
    r = HTTP.get(f"{url}/v1/sessions/{sid}", params={"include_state": "true"}, timeout=30)
    answers.append(r.json())
    return answers


def decodes(url: str) -> list[dict[str, Any]]:
    """Greedy dates (3 rows: padded to 4), beam search and sampling on reverse."""
    sources = [[20, 36, 40, 10, 34, 28], [1, 2, 3, 4, 5, 6]]
    beam = {"strategy": "beam", "beam_width": 3, "num_return_sequences": 2}
    sample = {"strategy": "sample", "seed": 7, "temperature": 0.8, "return_probabilities": True}
    return [
        post(url, "/predict", {"model": "dates", "inputs": DATES, "return_scores": True}),
        post(url, "/predict", {"inputs": sources, **beam, "return_scores": True}),
        post(url, "/predict", {"inputs": sources, **sample}),
    ]


def test_xla_answers_equal_the_graphs(xla_url: str, graph_url: str) -> None:
    graphs = decodes(graph_url) + session_answers(graph_url)
    decodes(xla_url)  # meets the buckets: the TF graphs answer while they compile
    session_answers(xla_url)
    dates, reverse = compiled(xla_url, "dates")["ready"], compiled(xla_url, "reverse")["ready"]
    assert 4 in dates.get("decode", []) + dates.get("generate", [])  # 3 rows, padded
    assert "beam_decode" in reverse
    assert any(name.startswith("sample") for name in reverse)
    assert compiled(xla_url, "memory")["ready"]["run"] == [1]
    same(decodes(xla_url) + session_answers(xla_url), graphs)


def test_a_model_xla_cannot_compile_is_served_as_graphs_under_auto(xla_fallback: str) -> None:
    answer = info(xla_fallback, "noxla")
    assert (answer["compiler"], answer["buckets"]) == ("graph", None)
    values = [1, 4, 0, 2, 3]
    got = post(xla_fallback, "/predict", {"model": "noxla", "inputs": [values]})
    assert got["outputs"] == [xla_store.expected_outputs(values)]


def test_a_model_xla_cannot_compile_is_refused_under_on(tmp_path: Path) -> None:
    store = xla_store.write(tmp_path)
    server = start_server(env={"SERVICE_XLA": "on", "SERVICE_WARMUP": "lazy"}, store=store)
    try:
        server.process.wait(timeout=120)
        output = server.output()
    finally:
        server.stop()
    assert server.process.returncode != 0
    assert "model 'noxla' cannot be compiled by XLA and SERVICE_XLA=on requires it" in output
    assert "AsString" in output  # the op XLA has no kernel for


def test_a_bad_value_stops_start_up_naming_the_allowed_ones() -> None:
    with pytest.raises(RuntimeError) as failed, running({"SERVICE_XLA": "maybe"}, timeout=60):
        pass
    message = str(failed.value)
    assert "exited with 2" in message
    assert "SERVICE_XLA must be one of auto, on, off, not 'maybe'" in message
