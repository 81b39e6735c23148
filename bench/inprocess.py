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


@dataclass
class XlaTiming:
    batch: int
    graph_ms: float  # the TF graph (SERVICE_XLA=off)
    xla_ms: float  # the XLA program of the batch's bucket
    same: bool  # tokens identical, floats within 1e-5


XLA_BATCHES = (1, 16, 256)


def measure_xla(progress: Progress, seconds: float = 3.0) -> list[XlaTiming]:
    """The reverse model's whole greedy decode (engine.decode: one graph call, numpy in and
    out, as the batcher calls it) as a TF graph and as XLA, at batch 1, 16 and 256."""
    stages = Stages(progress, "XLA vs graph", 1 + 2 * len(XLA_BATCHES))
    stages.start("loading the reverse model (SERVICE_XLA=auto)")
    from service.inference.compiled import warmup, xla
    from service.inference.compiled.keras_model import KerasCompute
    from service.inference.compiled.loader import load_store

    warmup.configure("lazy")
    xla.configure("auto", max(XLA_BATCHES))
    engine = load_store(Path(ROOT / "model_store")).get("reverse").compute
    assert isinstance(engine, KerasCompute) and engine.xla is not None
    compiler = engine.xla
    rng = np.random.default_rng(0)
    out = []
    for batch in XLA_BATCHES:
        sources = rng.integers(1, 51, size=(batch, 6)).astype(np.int32)
        limits = np.full(batch, 3, np.int32)
        stages.start(f"compiling the XLA bucket of batch {batch}")
        with engine.graphs_only():
            graph = engine.decode(sources, limits, False)
        engine.decode(sources, limits, False)  # queues the bucket
        xla.start()
        xla.wait()
        runs = compiler.runs
        fast = engine.decode(sources, limits, False)
        assert compiler.runs == runs + 1, compiler.failure or "XLA did not answer"
        same = bool(
            np.array_equal(fast.tokens, graph.tokens)
            and fast.scores is not None
            and graph.scores is not None
            and np.allclose(fast.scores, graph.scores, rtol=1e-5, atol=1e-5)
        )
        stages.start(f"timing batch {batch}")

        def graph_call(s: np.ndarray = sources, n: np.ndarray = limits) -> object:
            with engine.graphs_only():
                return engine.decode(s, n, False)

        graph_ms = _time(graph_call, seconds)
        xla_ms = _time(lambda s=sources, n=limits: engine.decode(s, n, False), seconds)
        out.append(XlaTiming(batch, graph_ms, xla_ms, same))
    stages.done()
    return out


def xla_markdown(timings: list[XlaTiming], when: str) -> str:
    lines = [
        f"# XLA vs TF graph: the reverse model's greedy decode ({when})",
        "",
        "`engine.decode` (encoder and 3 decoder steps in one call, numpy in and out, the",
        "XLA call padded to its batch bucket): the mean of back-to-back calls for >= 3 s",
        "per figure, TensorFlow on 1 intra-op and 1 inter-op thread as the service runs it.",
        "",
        "| batch | TF graph ms | XLA ms | graph / XLA | same answers |",
        "|---|---|---|---|---|",
    ]
    for t in timings:
        lines.append(
            f"| {t.batch} | {t.graph_ms:.3f} | {t.xla_ms:.3f} | "
            f"{t.graph_ms / t.xla_ms:.2f}x | {t.same} |"
        )
    return "\n".join(lines) + "\n"


def write_xla(out: Path, timings: list[XlaTiming], when: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "xla.md").write_text(xla_markdown(timings, when))


def main() -> None:
    """`python -m bench.inprocess`: the XLA microbenchmark alone (`python -m bench` runs
    it with the rest), printed and written to bench/results/xla.md."""
    import argparse

    from service.inference.compiled.threads import configure_threads
    from service.progress import bars

    parser = argparse.ArgumentParser(prog="python -m bench.inprocess")
    parser.add_argument("--seconds", type=float, default=3.0, help="per figure")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    configure_threads(1, 1)  # as the service runs TensorFlow (SERVICE_TF_*_THREADS)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with bars(auto_refresh=False) as progress:
        timings = measure_xla(progress, args.seconds)
    print(xla_markdown(timings, when))
    write_xla(args.out, timings, when)


if __name__ == "__main__":
    main()
