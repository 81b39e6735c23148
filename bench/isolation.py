"""Isolation: one client's long decodes next to other clients' small requests.

python -m bench isolation [--seconds 6]

The heavy client posts 250 sources with max_steps 250 to /v1/models/reverse/predict
back to back (~0.2 s of compute each, within SERVICE_MAX_STEPS_PER_REQUEST). Beside it,
wrk measures small predicts on the same model (8 connections, one source, 3 steps) and
session steps on another model (memory, 16 sessions, 8 connections), first alone, then
with the heavy client running. Each server setting runs in turn in this one process:
decodes sliced (the default, SERVICE_BATCH_SLICE_MS=2) and run whole
(SERVICE_BATCH_SLICE_MS=0, what the batcher did before slicing). The ratio is p99 with
the heavy client over p99 alone: 1.0 means the heavy client costs the others nothing.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass

import httpx
import numpy as np

from bench.wrk import LoadResult, post_script, sessions_script, wrk
from tests.harness import running

SMALL = json.dumps({"inputs": [[20, 36, 40, 10, 34, 28]], "max_steps": 3})
HEAVY_SOURCES = np.random.default_rng(3).integers(1, 51, size=(250, 6)).tolist()
HEAVY = {"inputs": HEAVY_SOURCES, "max_steps": 250}


@dataclass
class Heavy:
    """Posts the heavy request back to back until stopped; counts answers."""

    url: str
    stop: threading.Event
    done: int = 0
    failed: int = 0
    seconds: float = 0.0

    def run(self) -> None:
        began = time.perf_counter()
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self.stop.is_set():
                answer = http.post("/v1/models/reverse/predict", json=HEAVY)
                if answer.status_code == 200:
                    self.done += 1
                else:
                    self.failed += 1
        self.seconds = time.perf_counter() - began


def _loads(url: str, ids: list[str], seconds: int, label: str) -> list[LoadResult]:
    small = post_script("/v1/models/reverse/predict", SMALL, None)
    return [
        wrk(url, small, 8, seconds, f"small predict {label}"),
        wrk(url, sessions_script(ids), 8, seconds, f"memory step {label}"),
    ]


def measure(slice_ms: str, seconds: int) -> dict[str, object]:
    env = {
        "SERVICE_LOG_LEVEL": "warning",
        "SERVICE_ACCESS_LOG": "false",
        "SERVICE_BATCH_SLICE_MS": slice_ms,
        "SERVICE_WARMUP": "all",  # nothing compiles during the measurement
    }
    with running(env, timeout=180) as (url, _):
        with httpx.Client(base_url=url, timeout=30) as http:
            ids = [
                http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]
                for _ in range(16)
            ]
            http.post("/v1/models/reverse/predict", json=HEAVY).raise_for_status()  # warm
        alone = _loads(url, ids, seconds, "alone")
        heavy = Heavy(url, threading.Event())
        thread = threading.Thread(target=heavy.run)
        thread.start()
        try:
            loaded = _loads(url, ids, seconds, "with heavy client")
        finally:
            heavy.stop.set()
            thread.join()
    return {"slice_ms": slice_ms, "alone": alone, "loaded": loaded, "heavy": heavy}


def report(results: list[dict[str, object]]) -> str:
    lines = [
        "| SERVICE_BATCH_SLICE_MS | load | alone p50 / p99 ms | with heavy p50 / p99 ms "
        "| p99 ratio | rps alone -> with heavy | heavy requests/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        heavy = r["heavy"]
        assert isinstance(heavy, Heavy)
        heavy_rps = heavy.done / heavy.seconds if heavy.seconds else 0.0
        for a, b in zip(r["alone"], r["loaded"], strict=True):  # type: ignore[call-overload]
            name = a.name.removesuffix(" alone")
            lines.append(
                f"| {r['slice_ms']} | {name} | {a.p50_ms:.1f} / {a.p99_ms:.1f} "
                f"| {b.p50_ms:.1f} / {b.p99_ms:.1f} | {b.p99_ms / a.p99_ms:.1f}x "
                f"| {a.rps:,.0f} -> {b.rps:,.0f} | {heavy_rps:.2f} ({heavy.failed} failed) |"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    results = [measure(slice_ms, args.seconds) for slice_ms in ("2", "0")]
    print(report(results))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=int, default=6, help="per load run")
