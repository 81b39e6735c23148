"""The benchmark's Python client loops (bench/client_loops.py) against a fake server in
this process: the predict loop and the per-step loop (encode, one call per step, states
sent back) decode what the server says, count sequences and calls, and flag wrong
answers; the peers' and workers' report rows add up."""

from __future__ import annotations

import os
import time

import pytest
from fastapi import FastAPI

from bench import client_loops, peers, workers
from bench.client_loops import LoopResult
from bench.wrk import LoadResult
from tests.harness.threaded import serving_in_thread

pytestmark = pytest.mark.unit

ANSWER = [40, 36, 20]


def fake_app() -> FastAPI:
    """/predict answers ANSWER; /encode and /step carry a step counter in the state and
    put all probability on ANSWER[counter]."""
    app = FastAPI()

    @app.post("/v1/models/reverse/predict")
    async def predict(body: dict) -> dict:  # type: ignore[type-arg]
        return {"outputs": [ANSWER for _ in body["inputs"]]}

    @app.post("/encode")
    async def encode(body: dict) -> dict:  # type: ignore[type-arg]
        return {"states": [[[0.0]], [[0.0]]]}

    @app.post("/step")
    async def step(body: dict) -> dict:  # type: ignore[type-arg]
        k = int(body["states"][0][0][0])
        probs = [0.0] * 51
        probs[ANSWER[k]] = 1.0
        return {"probabilities": [probs], "states": [[[k + 1.0]], [[0.0]]]}

    return app


async def test_the_client_loops_decode_count_and_check() -> None:
    with serving_in_thread(fake_app()) as (url, _):
        for loop in ("predict", "steps"):
            assert await client_loops.decode_all(url, loop, [[1, 2, 3, 4, 5, 6]]) == [ANSWER]
        good = await client_loops.load(url, "steps", 4, 0.3, 0.1, ANSWER)
        assert good["sequences"] > 0 and good["failed"] == 0
        assert good["calls"] >= 4 * good["sequences"] - 4 * 4  # 4 calls a sequence
        wrong = await client_loops.load(url, "predict", 2, 0.2, 0.0, [1, 2, 3])
        assert wrong["sequences"] > 0 and wrong["failed"] == wrong["sequences"]


def test_percentile_is_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert client_loops.percentile(values, 99) == 99.0
    assert client_loops.percentile(values, 50) == 50.0
    assert client_loops.percentile([], 99) == 0.0


def test_peer_rows_and_targets() -> None:
    pred32 = LoadResult("predict", 32, 4000.0, 5.0, 7.0, 9.0, 24000, 0)
    figures = {
        "tutorial": LoadResult("peer (a)", 32, 5.0, 3000.0, 5000.0, 6000.0, 60, 0),
        "steps": LoopResult("peer (b)", 32, 300.0, 1200.0, 90.0, 100.0, 150.0, 1800, 0),
        "predict_loops": LoopResult("/predict", 32, 3000.0, 3000.0, 9.0, 12.0, 15.0, 18000, 0),
        "sample": 32,
        "tutorial_mismatches": 0,
        "steps_mismatches": 0,
    }
    assert "| 800x |" in "\n".join(peers.rows(pred32, figures))
    found = {name: (measured, ok) for name, _, measured, ok in peers.targets(pred32, figures)}
    assert found["`/predict` vs peer (a), sequences/s at 32 connections (wrk)"] == ("800x", True)
    assert found["`/predict` vs peer (b), sequences/s at 32 client loops"] == ("10.0x", True)


def test_workers_split_connections_and_sum_replicas() -> None:
    assert workers.split(["a", "b", "c", "d"], 2) == [["a", "c"], ["b", "d"]]
    runs = [
        LoadResult("predict", 16, 1000.0, 2.0, 3.0, 4.0, 6000, 0),
        LoadResult("predict", 16, 1500.0, 3.0, 4.0, 8.0, 9000, 1),
    ]
    f = workers.combine("2 processes, Redis store", 2, "`/predict`", runs)
    assert (f.connections, f.rps, f.p99_ms, f.failed) == (32, 2500.0, 8.0, 1)


def test_workers_count_the_servers_cpu_time() -> None:
    """This process, busy for 0.1 s: at most one core (less on a loaded machine)."""
    result = LoadResult("x", 1, 1.0, 1.0, 1.0, 1.0, 1, 0)

    def busy() -> list[LoadResult]:
        until = time.perf_counter() + 0.1
        while time.perf_counter() < until:
            pass
        return [result]

    runs, cores = workers.loaded([os.getpid()], busy)
    assert runs == [result] and 0.05 < cores < 1.2


def test_workers_report_the_rounds_medians() -> None:
    def figure(setup: str, processes: int, rps: float, failed: int = 0) -> workers.Figure:
        return workers.Figure(setup, processes, "`/predict`", 32, rps, 2.0, rps / 100, failed)

    rounds = [
        figure("1 process, in-process store", 1, 1000.0),
        figure("2 processes, Redis store", 2, 1500.0),
        figure("1 process, in-process store", 1, 3000.0),
        figure("2 processes, Redis store", 2, 900.0, failed=2),
        figure("1 process, in-process store", 1, 2000.0),
        figure("2 processes, Redis store", 2, 1200.0),
    ]
    text = workers.report(rounds, "now", 6, 3)
    assert (
        "| 1 | in-process | `/predict` | 32 | 2,000 (1,000-3,000) | 1.00x | 2.00 | 20.00 |" in text
    )
    assert (
        "| 2 | Redis | `/predict` | 32 | 1,200 (900-1,500) | 0.60x | 2.00 | 12.00 | 0.00 | 2 |"
        in text
    )
