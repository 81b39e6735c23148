"""Start-up with the default settings: `python -m service serve` on the shipped store,
seconds from process start to `/readyz` 200, and each model's load time
(`seq2seq_model_load_seconds` from `/metrics`).

python -m bench startup [--rounds N]

One round is also part of `python -m bench` (bench/results/RESULTS.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from tests.harness import SHIPPED, running

READY = "start to /readyz 200"


def load_seconds() -> dict[str, float]:
    """One start: start -> /readyz 200, then each model's load time."""
    started = time.perf_counter()
    with running(store=SHIPPED, timeout=180, product_defaults=True) as (url, _):
        ready = time.perf_counter() - started
        text = httpx.get(f"{url}/metrics").text
    out = {READY: ready}
    for line in text.splitlines():
        if line.startswith("seq2seq_model_load_seconds{"):
            model = line.split('model="', 1)[1].split('"', 1)[0]
            out[model] = float(line.rsplit(" ", 1)[1])
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=3, help="server starts, one at a time")


def run(args: argparse.Namespace) -> int:
    rounds = [load_seconds() for _ in range(args.rounds)]
    print(f"{'':24} {'median':>8} {'min':>8} {'max':>8}   ({args.rounds} starts)")
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        print(f"{key:24} {statistics.median(values):7.2f}s {min(values):7.2f}s {max(values):7.2f}s")
    return 0
