"""In-process decoding: the tutorial loop (Keras predict() per step) vs the engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from service.progress import Stages
from tests.harness import ROOT


@dataclass
class Timing:
    name: str
    batch: int
    ms_per_call: float


def _time(fn: Callable[[], object], seconds: float, min_calls: int = 3) -> float:
    fn()  # warm-up
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls * 1000


def measure(progress: Progress, seconds: float = 4.0) -> tuple[list[Timing], bool]:
    """Returns timings and whether the engine's outputs equal the tutorial loop's."""
    stages = Stages(progress, "in-process", 6)
    stages.start("loading the reverse model")
    import keras

    from service.inference.compiled.loader import load_store

    version = ROOT / "model_store" / "reverse" / "1"
    engine = load_store(Path(ROOT / "model_store")).get("reverse").compute
    encoder = keras.saving.load_model(version / "encoder.keras", compile=False)
    decoder = keras.saving.load_model(version / "decoder.keras", compile=False)
    eye = np.eye(51, dtype=np.float32)

    def tutorial(sources: np.ndarray) -> np.ndarray:
        """The classic predict_sequence loop, vectorised over a batch."""
        h, c = encoder.predict(eye[sources], verbose=0)
        token = np.zeros(len(sources), np.int64)
        out = []
        for _ in range(3):
            probs, h, c = decoder.predict([eye[token][:, None, :], h, c], verbose=0)
            token = np.argmax(probs[:, -1, :], axis=-1)
            out.append(token)
        return np.stack(out, axis=1)

    rng = np.random.default_rng(0)
    one = rng.integers(1, 51, size=(1, 6)).astype(np.int32)
    many = rng.integers(1, 51, size=(64, 6)).astype(np.int32)
    limits1, limits64 = np.full(1, 3, np.int32), np.full(64, 3, np.int32)
    stages.start("engine vs tutorial loop outputs")
    same = bool(
        np.array_equal(tutorial(many), engine.decode(many, limits64, False).tokens)
        and all(
            np.array_equal(
                tutorial(many[i : i + 1]), engine.decode(many[i : i + 1], limits1, False).tokens
            )
            for i in range(8)
        )
    )
    runs: list[tuple[str, np.ndarray, Callable[[], object]]] = [
        ("tutorial loop, predict() per step", one, lambda: tutorial(one)),
        ("engine, one graph call", one, lambda: engine.decode(one, limits1, False)),
        ("tutorial loop, predict() per step", many, lambda: tutorial(many)),
        ("engine, one graph call", many, lambda: engine.decode(many, limits64, False)),
    ]
    timings = []
    for name, sources, call in runs:
        stages.start(f"{name}, batch {len(sources)}")
        timings.append(Timing(name, len(sources), _time(call, seconds)))
    stages.done()
    return timings, same
