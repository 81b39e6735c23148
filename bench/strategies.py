"""What beam search and sampling cost next to greedy, on the shipped models, in process.

python -m bench.strategies [--rounds 5] [--batches 1,64]

For each model and batch size: the median time of one batch decoded greedy (the
baseline), sampled, and by beam search at widths 1, 4 and 8, each one compiled graph
call; and the same beam search run by the numpy reference (service/inference/
beam_search.py: one Python round trip and one compiled step per decoder step), which
is what a per-step loop would cost. Ratios are against greedy in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from service.inference.compiled.loader import load_store
from service.inference.model.interface import Decoding, LoadedModel
from service.inference.reference.compute import ReferenceCompute
from service.inference.reference.sampling import row_seeds
from service.inference.serving.decoding import sampling


def median_seconds(run: Callable[[], object], rounds: int) -> float:
    run()  # a first call out of the figures
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def sources(model: LoadedModel, batch: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    length = model.spec.manifest.source.length or 6
    return rng.integers(1, model.spec.manifest.source.size, (batch, length)).astype(np.int32)


def measure(model: LoadedModel, batch: int, rounds: int) -> list[tuple[str, float]]:
    compute = model.compute
    src = sources(model, batch)
    limits = np.full(batch, model.spec.manifest.max_steps, np.int32)
    alpha = np.zeros(batch, np.float32)
    rows = [Decoding("sample", seed=int(s)) for s in row_seeds(7, batch)]
    runs: list[tuple[str, Callable[[], object]]] = [
        ("greedy", lambda: compute.decode(src, limits, False)),
        ("sample", lambda: compute.decode(src, limits, False, sampling(rows))),
        ("beam 1", lambda: compute.beam_decode(src, limits, 1, alpha)),
        ("beam 4", lambda: compute.beam_decode(src, limits, 4, alpha)),
        ("beam 8", lambda: compute.beam_decode(src, limits, 8, alpha)),
        (
            "beam 4, per-step loop",
            lambda: ReferenceCompute.beam_decode(compute, src, limits, 4, alpha),
        ),  # type: ignore[arg-type]
    ]
    return [(name, median_seconds(run, rounds)) for name, run in runs]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.strategies")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="1,64")
    args = parser.parse_args()
    registry = load_store(Path("model_store"))
    print("| model | batch | decode | ms per batch | x greedy |")
    print("|---|---|---|---|---|")
    for name in ("reverse", "dates"):
        model = registry.get(name)
        for batch in (int(b) for b in args.batches.split(",")):
            figures = measure(model, batch, args.rounds)
            greedy = figures[0][1]
            for label, seconds in figures:
                print(
                    f"| {name} | {batch} | {label} | {seconds * 1e3:.2f} | {seconds / greedy:.2f} |"
                )


if __name__ == "__main__":
    main()
