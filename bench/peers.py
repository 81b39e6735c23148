"""Peers: the same `reverse` model decoded the ways users do without this service, next to
`/predict`, in the same run (`python -m bench`).

- Peer (a), bench/peer_tutorial.py: the tutorial's loop behind FastAPI (Keras
  `predict()` per step in the handler). Loaded with wrk at 32 connections, like
  `/predict`; its figures compare with `/predict`'s wrk run at 32 connections.
- Peer (b), bench/peer_steps.py: the loop in the client over a stateless per-step
  endpoint (what TF Serving and Triton users must write: encode, then one HTTP call per
  decoder step, the states in JSON both ways). wrk cannot run a client loop, so peer (b)
  and, for a like-for-like figure, `/predict` too are loaded by 32 Python client loops
  (bench/client_loops.py).

Each peer is served as a process of its own with the service's uvicorn settings
(service.server.serve with Settings()). A sample of sources is decoded by `/predict` and
by both peers; the tokens must be the same.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
from rich.progress import Progress

from bench import client_loops
from bench.client_loops import LoopResult
from bench.wrk import LoadResult, post_script, wrk
from service.progress import Stages
from tests.harness import running

# a short shutdown: peer (a) still holds up to 32 queued requests when its run ends
ENV = {
    "SERVICE_LOG_LEVEL": "warning",
    "SERVICE_ACCESS_LOG": "false",
    "SERVICE_SHUTDOWN_TIMEOUT_SECONDS": "1",
}
SOURCE = client_loops.SOURCE
CONNECTIONS = 32
# peer (a) finishes a few sequences per second: a longer run, no wrk warm-up (its
# unanswered requests would be left queued in front of the measured run), a timeout
# above the ~32 x per-sequence time a request waits
TUTORIAL_MIN_SECONDS, TUTORIAL_TIMEOUT = 12, 60


def sample_sources(n: int = 32) -> list[list[int]]:
    rng = np.random.default_rng(21)
    return [SOURCE, *rng.integers(1, 51, size=(n - 1, 6)).tolist()]


def mismatches(got: list[list[int]], expected: list[list[int]]) -> int:
    return sum(g != e for g, e in zip(got, expected, strict=True)) + abs(len(got) - len(expected))


def measure(url: str, seconds: int, progress: Progress) -> dict[str, Any]:
    """`url`: the service, serving `reverse`. Returns the peers' figures (LoadResult for
    wrk runs, LoopResult for client loops) and the sample's mismatches."""
    stages = Stages(progress, "peers", 5)
    sources = sample_sources()
    body = json.dumps({"inputs": [SOURCE]})
    predict = f"{url}/v1/models/reverse/predict"
    expected = httpx.post(predict, json={"inputs": sources}, timeout=60).json()["outputs"]

    stages.start(f"/predict, {CONNECTIONS} Python client loops")
    predict_loops = client_loops.measure(
        url, "predict", CONNECTIONS, seconds, "/predict", expected=expected[0]
    )
    print(predict_loops, flush=True)

    stages.start("peer (a): starting the tutorial loop behind FastAPI")
    with running(ENV, module=["bench.peer_tutorial"], timeout=180) as (peer, _):
        a_tokens = httpx.post(f"{peer}/predict", json={"inputs": sources}, timeout=120)
        a_tokens.raise_for_status()
        answer = httpx.post(
            f"{peer}/predict", content=body, headers={"content-type": "application/json"}
        ).text
        stages.start(f"peer (a), wrk, {CONNECTIONS} connections")
        tutorial = wrk(
            f"{peer}/predict",
            post_script("/predict", body, answer),
            CONNECTIONS,
            max(seconds, TUTORIAL_MIN_SECONDS),
            "peer (a)",
            warm_up=0,
            timeout=TUTORIAL_TIMEOUT,
        )
    print(tutorial, flush=True)

    stages.start("peer (b): starting the per-step server")
    with running(ENV, module=["bench.peer_steps"], timeout=180) as (peer, _):
        b_tokens = client_loops.decode(peer, "steps", sources)
        stages.start(f"peer (b), {CONNECTIONS} Python client loops")
        steps = client_loops.measure(
            peer, "steps", CONNECTIONS, seconds, "peer (b)", expected=expected[0]
        )
    print(steps, flush=True)
    stages.done()
    return {
        "tutorial": tutorial,
        "steps": steps,
        "predict_loops": predict_loops,
        "sample": len(sources),
        "tutorial_mismatches": mismatches(a_tokens.json()["outputs"], expected),
        "steps_mismatches": mismatches(b_tokens, expected),
    }


def rows(pred32: LoadResult, peers: dict[str, Any]) -> list[str]:
    """The markdown table of sequences/s and latency, `/predict` (wrk, 32 connections)
    first."""
    a: LoadResult = peers["tutorial"]
    b: LoopResult = peers["steps"]
    p: LoopResult = peers["predict_loops"]
    out = [
        "| server | load | sequences/s | p50 ms | p99 ms | failed | `/predict` / it |",
        "|---|---|---|---|---|---|---|",
        f"| `/predict` (the engine) | wrk, 32 connections | {pred32.rps:,.1f} | "
        f"{pred32.p50_ms:.2f} | {pred32.p99_ms:.2f} | {pred32.failed} | 1x |",
        f"| peer (a): the tutorial loop behind FastAPI | wrk, 32 connections | {a.rps:,.2f} | "
        f"{a.p50_ms:,.0f} | {a.p99_ms:,.0f} | {a.failed} | "
        f"{ratio(pred32.rps, a.rps)} |",
        f"| `/predict` (the engine) | 32 Python client loops | {p.sequences_per_s:,.1f} | "
        f"{p.p50_ms:.2f} | {p.p99_ms:.2f} | {p.failed} | 1x |",
        f"| peer (b): the loop in the client, one call per step "
        f"({b.calls_per_s:,.0f} calls/s) | 32 Python client loops | {b.sequences_per_s:,.1f} | "
        f"{b.p50_ms:.2f} | {b.p99_ms:.2f} | {b.failed} | "
        f"{ratio(p.sequences_per_s, b.sequences_per_s)} |",
    ]
    return out


def ratio(a: float, b: float) -> str:
    return f"{a / b:,.0f}x" if b else "inf"


def targets(pred32: LoadResult, peers: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    a: LoadResult = peers["tutorial"]
    b: LoopResult = peers["steps"]
    p: LoopResult = peers["predict_loops"]
    bad = peers["tutorial_mismatches"] + peers["steps_mismatches"]
    failed = a.failed + b.failed + p.failed
    return [
        (
            "`/predict` vs peer (a), sequences/s at 32 connections (wrk)",
            ">= 100x",
            ratio(pred32.rps, a.rps),
            a.rps == 0 or pred32.rps >= 100 * a.rps,
        ),
        (
            "`/predict` vs peer (b), sequences/s at 32 client loops",
            ">= 5x",
            f"{p.sequences_per_s / b.sequences_per_s:.1f}x" if b.sequences_per_s else "inf",
            b.sequences_per_s == 0 or p.sequences_per_s >= 5 * b.sequences_per_s,
        ),
        (
            f"peers' answers differing from `/predict` ({peers['sample']} sources each)",
            "0",
            str(bad),
            bad == 0,
        ),
        (
            "failed or wrong answers from the peers' and client loops' runs",
            "0",
            str(failed),
            failed == 0,
        ),
    ]
