"""Transformer decoders in-process: per-token decode time against the prefix length for
prefix mode and cached mode (KerasHub layout), at batch 1 and 64, and sequences per
second against keras-io's loop (the whole trained model re-run per token from Python).

python -m bench.transformers [--seconds 1.5] [--out bench/results]

The model: keras-io's KerasHub layout (TokenAndPositionEmbedding, TransformerEncoder,
two TransformerDecoder layers, Dense softmax), 64 wide, 4 heads, a window of 64 target
positions, sources of 16 tokens; seeded random weights (decoding cost does not depend on
training), no end token, so every decode runs the steps asked for. Both modes are the
service's compiled decode (compiled/loader.build_model; prefix mode with kv_cache=False),
TF graphs (SERVICE_XLA=off) on TensorFlow's 1 intra-op and 1 inter-op thread as served.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.harness import ROOT

WINDOW, SOURCE, VOCAB, WIDTH = 64, 16, 64, 64
LENGTHS = (1, 2, 4, 8, 16, 32, 64)


def build() -> tuple[Any, Any, Any]:
    import keras
    import keras_hub

    keras.utils.set_random_seed(3)
    enc_in = keras.Input(shape=(None,), dtype="int32")
    x = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, SOURCE, WIDTH, mask_zero=True)(enc_in)
    memory = keras_hub.layers.TransformerEncoder(2 * WIDTH, 4)(inputs=x)
    encoder = keras.Model(enc_in, memory)
    dec_in = keras.Input(shape=(None,), dtype="int32")
    mem_in = keras.Input(shape=(None, WIDTH))
    x = keras_hub.layers.TokenAndPositionEmbedding(VOCAB, WINDOW, WIDTH)(dec_in)
    for _ in range(2):
        x = keras_hub.layers.TransformerDecoder(2 * WIDTH, 4)(
            decoder_sequence=x, encoder_sequence=mem_in
        )
    decoder = keras.Model([dec_in, mem_in], keras.layers.Dense(VOCAB, activation="softmax")(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        whole = keras.Model([enc_in, dec_in], decoder([dec_in, memory]))
    return encoder, decoder, whole


def manifest() -> dict[str, Any]:
    return {
        "kind": "seq2seq",
        "decoder_kind": "transformer",
        "source": {"encoding": "index", "cardinality": VOCAB},
        "target": {"encoding": "index", "cardinality": VOCAB},
        "start_token": 1,
        "max_steps": WINDOW,
    }


def timed(fn: Callable[[], object], seconds: float) -> float:
    """Median ms per call over >= 3 calls and >= `seconds`, after one warm-up call."""
    fn()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - began < seconds:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def decoding(compute: Any, sources: np.ndarray, limits: np.ndarray) -> Callable[[], object]:
    return lambda: compute.decode(sources, limits, False)


def keras_io_loop(whole: Any, sources: np.ndarray, steps: int) -> np.ndarray:
    """keras-io's loop: per token, the whole model on the padded prefix, argmax at i."""
    prefix = np.zeros((len(sources), WINDOW), np.int32)
    prefix[:, 0] = 1
    for i in range(steps):
        probabilities = np.asarray(whole([sources, prefix], training=False))
        if i + 1 < WINDOW:
            prefix[:, i + 1] = probabilities[:, i].argmax(-1)
    return prefix[:, 1:]


def one_token(compute: Any, tokens: np.ndarray, states: Any) -> Callable[[], object]:
    one = np.ones(len(tokens), np.int32)
    return lambda: compute.generate(tokens, states, one, False)


def sessions(compute: Any, rng: np.random.Generator, seconds: float) -> list[str]:
    """ms for one more token from sessions holding `held` tokens: from their prefix
    states (the caches built in the call) or from the caches kept from their last call."""
    rows = []
    for batch in (1, 64):
        sources = rng.integers(2, VOCAB, (batch, SOURCE)).astype(np.int32)
        for held in (1, 16, 32, 63):
            start = np.ones(batch, np.int32)
            limits = np.full(batch, held, np.int32)  # fed: [start] and held - 1 generated
            went = compute.generate(start, compute.encode(sources), limits, False)
            kept, tokens = went.states, went.tokens[:, -1].astype(np.int32)
            prefix = compute.prefix_states(kept)
            built = timed(one_token(compute, tokens, prefix), seconds)
            hit = timed(one_token(compute, tokens, kept), seconds)
            rows.append(f"| {batch} | {held} | {built:.2f} | {hit:.2f} |")
    return rows


def run(args: argparse.Namespace) -> int:
    from service.inference.compiled.keras_model import KerasCompute
    from service.inference.compiled.loader import build_model
    from service.inference.compiled.threads import configure_threads
    from service.inference.model.formats.keras_file import KerasGraph
    from service.inference.model.manifest import Manifest

    configure_threads(1, 1)
    encoder, decoder, whole = build()
    spec = Manifest.model_validate(manifest())
    modes = {
        cached: build_model(
            "bench", 1, spec, KerasGraph(encoder), KerasGraph(decoder), False, kv_cache=cached
        ).compute
        for cached in (False, True)
    }
    cached_compute = modes[True]
    assert isinstance(cached_compute, KerasCompute) and cached_compute.kv_cache()[0]
    rng = np.random.default_rng(0)
    rows: list[str] = []
    per_token: dict[tuple[bool, int], list[float]] = {}
    for batch in (1, 64):
        sources = rng.integers(2, VOCAB, (batch, SOURCE)).astype(np.int32)
        same = modes[False].decode(sources, np.full(batch, WINDOW, np.int32), False).tokens
        other = modes[True].decode(sources, np.full(batch, WINDOW, np.int32), False).tokens
        differing = int(np.sum(np.any(same != other, axis=1)))
        for cached in (False, True):
            compute = modes[cached]
            times = []
            for length in LENGTHS:
                limits = np.full(batch, length, np.int32)
                times.append(timed(decoding(compute, sources, limits), args.seconds))
            per_token[(cached, batch)] = times
            mode = "cached" if cached else "prefix"
            # the cost of the tokens from L/2 + 1 to L, per token: flat if a step's cost
            # does not grow with the prefix
            marginal = [
                (times[k] - times[k - 1]) / (LENGTHS[k] - LENGTHS[k - 1])
                for k in range(1, len(LENGTHS))
            ]
            cells = " | ".join(f"{m:.3f}" for m in marginal)
            rows.append(f"| {mode} | {batch} | {times[0]:.2f} | {cells} | {times[-1]:.1f} |")
        rows.append(
            f"| rows differing, cached vs prefix ({WINDOW} tokens) | {batch} | {differing} |"
        )
    session_rows = sessions(cached_compute, rng, args.seconds)
    one = rng.integers(2, VOCAB, (1, SOURCE)).astype(np.int32)
    loop_ms = timed(lambda: keras_io_loop(whole, one, WINDOW), args.seconds)
    loop_tokens = keras_io_loop(whole, one, WINDOW)  # the first WINDOW - 1 (it has room)
    served = modes[True].decode(one, np.asarray([WINDOW], np.int32), False)
    equal = bool(np.array_equal(served.tokens[0, : WINDOW - 1], loop_tokens[0]))
    sequences = {
        "keras-io loop, batch 1": 1000 / loop_ms,
        "prefix mode, batch 1": 1000 / per_token[(False, 1)][-1],
        "cached mode, batch 1": 1000 / per_token[(True, 1)][-1],
        "prefix mode, batch 64": 64 * 1000 / per_token[(False, 64)][-1],
        "cached mode, batch 64": 64 * 1000 / per_token[(True, 64)][-1],
    }
    header = " | ".join(f"tokens {LENGTHS[k - 1] + 1}-{LENGTHS[k]}" for k in range(1, len(LENGTHS)))
    text = "\n".join(
        [
            f"# Transformer decoding ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            "`python -m bench.transformers`)",
            "",
            f"KerasHub layout, width {WIDTH}, 4 heads, 2 decoder layers, window {WINDOW}, "
            f"sources of {SOURCE}; one compiled decode per call (TF graph, 1+1 threads). "
            "ms for 1 token: encode, caches started from the memory and one step; then, per span, "
            "ms per token (the decode times at the span's ends, differenced): flat when a "
            "step's cost does not grow with the prefix.",
            "",
            f"| mode | batch | ms for 1 token | {header} | ms per decode of {WINDOW} |",
            "|---|---|---|" + "---|" * (len(LENGTHS) - 1) + "---|",
            *rows,
            "",
            f"| decoder | sequences of {WINDOW} tokens per second | x keras-io's loop |",
            "|---|---|---|",
            *(
                f"| {name} | {value:,.1f} | {value / sequences['keras-io loop, batch 1']:,.0f}x |"
                for name, value in sequences.items()
            ),
            "",
            f"keras-io's loop and the cached decode gave the same {WINDOW - 1} tokens: {equal}.",
            "",
            "A session's request for one token (cached mode), by the tokens it holds: ms "
            "from its prefix states (a session this process has not kept: the caches built "
            "in the call, one pass over the window) and from the caches this process kept "
            "from its last request (service/dataplane/kv_sessions.py).",
            "",
            "| batch | tokens held | from the prefix | from kept caches |",
            "|---|---|---|---|",
            *session_rows,
        ]
    )
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "transformers.md").write_text(text + "\n")
    return 0


def main() -> int:
    warnings.filterwarnings("ignore", message=".*does not support masking", category=UserWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per figure")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
