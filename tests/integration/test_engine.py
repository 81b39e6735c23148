"""The compiled engine against the step-by-step reference loop, on the shipped models."""

from pathlib import Path

import numpy as np
import pytest

from service.inference.compiled.keras_model import KerasCompute
from service.inference.compiled.loader import load_store
from service.inference.model.interface import LoadedModel
from service.inference.reference.compute import ReferenceCompute
from tests.floats import assert_close
from tests.harness import STORE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def models(shipped_models: dict[str, LoadedModel]) -> dict[str, LoadedModel]:
    return shipped_models


def compute(model: LoadedModel) -> KerasCompute:
    assert isinstance(model.compute, KerasCompute)
    return model.compute


def close(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    for x, y in zip(a, b, strict=True):
        assert_close(x, y)


def test_compiled_decode_equals_reference_loop(models: dict[str, LoadedModel]) -> None:
    engine = compute(models["reverse"])
    sources = np.random.default_rng(1).integers(1, 51, size=(64, 6)).astype(np.int32)
    limits = np.asarray([1 + i % 5 for i in range(64)], np.int32)
    fast = engine.decode(sources, limits, True)
    slow = ReferenceCompute.decode(engine, sources, limits, True)
    np.testing.assert_array_equal(fast.lengths, limits)
    np.testing.assert_array_equal(fast.lengths, slow.lengths)
    for i, n in enumerate(limits):
        np.testing.assert_array_equal(fast.tokens[i, :n], slow.tokens[i, :n])
        assert fast.probabilities is not None and slow.probabilities is not None
        assert_close(fast.probabilities[i, :n], slow.probabilities[i, :n])
    # generate from the encoded states also returns each row's final state
    start = np.zeros(64, np.int32)
    fast_gen = engine.generate(start, engine.encode(sources), limits, False)
    slow_gen = ReferenceCompute.generate(engine, start, engine.encode(sources), limits, False)
    np.testing.assert_array_equal(fast_gen.tokens, fast.tokens)
    np.testing.assert_array_equal(fast_gen.lengths, slow_gen.lengths)
    close(fast_gen.states, slow_gen.states)


def test_compiled_run_equals_reference_loop(models: dict[str, LoadedModel]) -> None:
    engine = compute(models["memory"])
    tokens = np.random.default_rng(2).integers(0, 5, size=(16, 9)).astype(np.int32)
    states = [np.random.default_rng(3).normal(size=(16, 20)).astype(np.float32) for _ in range(2)]
    fast = engine.run(tokens, states, True)
    slow = ReferenceCompute.run(engine, tokens, states, True)
    np.testing.assert_array_equal(fast.tokens, slow.tokens)
    assert fast.probabilities is not None and slow.probabilities is not None
    assert_close(fast.probabilities, slow.probabilities)
    close(fast.states, slow.states)


def test_end_token_stops_rows_in_the_compiled_loop(
    models: dict[str, LoadedModel], tmp_path: Path
) -> None:
    import json
    import shutil

    version = tmp_path / "store" / "reverse" / "1"
    shutil.copytree(STORE / "reverse" / "1", version)
    manifest = json.loads((version / "model.json").read_text())
    manifest["end_token"] = 36  # stop as soon as 36 is emitted
    (version / "model.json").write_text(json.dumps(manifest))
    engine = compute(load_store(tmp_path / "store", warm_up=False).get("reverse"))
    sources = np.asarray(
        [[20, 36, 40, 10, 34, 28], [1, 2, 3, 4, 5, 6], [36, 9, 8, 7, 6, 5]], np.int32
    )
    limits = np.full(3, 5, np.int32)
    fast = engine.decode(sources, limits, False)
    slow = ReferenceCompute.decode(engine, sources, limits, False)
    assert fast.lengths.tolist() == slow.lengths.tolist() == [2, 5, 3]
    assert fast.tokens[0, :2].tolist() == [40, 36]
    for i, n in enumerate(fast.lengths):
        assert fast.tokens[i, :n].tolist() == slow.tokens[i, :n].tolist()
    start = np.zeros(3, np.int32)
    fast_gen = engine.generate(start, engine.encode(sources), limits, False)
    slow_gen = ReferenceCompute.generate(engine, start, engine.encode(sources), limits, False)
    assert fast_gen.lengths.tolist() == [2, 5, 3]
    close(fast_gen.states, slow_gen.states)


def test_no_retracing_across_batch_sizes_and_lengths(models: dict[str, LoadedModel]) -> None:
    reverse, memory = compute(models["reverse"]), compute(models["memory"])
    rng = np.random.default_rng(4)

    def exercise(batch: int, length: int, steps: int) -> None:
        sources = rng.integers(1, 51, size=(batch, length)).astype(np.int32)
        for probs in (False, True):
            reverse.decode(sources, np.full(batch, steps, np.int32), probs)
            reverse.generate(
                np.zeros(batch, np.int32),
                reverse.encode(sources),
                np.full(batch, steps, np.int32),
                probs,
            )
            memory.run(
                rng.integers(0, 5, size=(batch, length)).astype(np.int32),
                memory.spec.zero_states(batch),
                probs,
            )
        memory.step(np.zeros(batch, np.int32), memory.spec.zero_states(batch))

    exercise(1, 6, 3)
    before = reverse.trace_count(), memory.trace_count()
    for batch, length, steps in [(2, 3, 1), (64, 6, 3), (7, 11, 9), (200, 1, 2), (1, 40, 17)]:
        exercise(batch, length, steps)
    assert (reverse.trace_count(), memory.trace_count()) == before


def test_batched_rows_equal_single_rows(models: dict[str, LoadedModel]) -> None:
    engine = compute(models["reverse"])
    sources = np.random.default_rng(5).integers(1, 51, size=(32, 6)).astype(np.int32)
    limits = np.full(32, 4, np.int32)
    batched = engine.decode(sources, limits, True)
    for i in range(32):
        single = engine.decode(sources[i : i + 1], limits[:1], True)
        assert single.tokens[0].tolist() == batched.tokens[i].tolist()
        assert single.probabilities is not None and batched.probabilities is not None
        # tokens exact; floats within tolerance: a batch of 32 takes other float32
        # kernel paths than one row (1.16e-6 apart on an AMD EPYC)
        assert_close(single.probabilities[0], batched.probabilities[i])
