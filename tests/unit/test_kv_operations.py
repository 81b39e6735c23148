"""The compute-thread side of kept key/value caches (service/inference/serving/
operations.py) on a numpy fake that keeps the contract of Compute.kv_states: generate and
run give back states extended by a cache and take either kind; beam search takes prefix
states. A job run in slices answers as one run whole, from prefix or extended states."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pytest

from service.inference.model.interface import (
    GREEDY,
    Decoded,
    Decoding,
    LoadedModel,
    States,
)
from service.inference.serving.jobs import Continue, GenerateJob, RunJob
from service.inference.serving.operations import Operations
from tests.fakes import CounterCompute, model

pytestmark = pytest.mark.unit


class CachingCompute(CounterCompute):
    """CounterCompute with one more state when extended: a (1,) count of the steps fed
    since the cache was built (built: 0)."""

    def kv_states(self, states: Sequence[np.ndarray]) -> States:
        if len(states) == 3:
            return list(states)
        return [*states, np.zeros((len(states[0]), 1), np.float32)]

    def prefix_states(self, states: Sequence[np.ndarray]) -> States:
        return list(states[:2])

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        probs, prefix = super().step(tokens, states[:2])
        return probs, [*prefix, states[2] + 1.0] if len(states) == 3 else prefix

    def generate(self, tokens: np.ndarray, states: Sequence[np.ndarray], *args: Any) -> Decoded:
        return super().generate(tokens, self.kv_states(states), *args)

    def run(self, tokens: np.ndarray, states: Sequence[np.ndarray], probs: bool) -> Decoded:
        return super().run(tokens, self.kv_states(states), probs)

    def beam(self, tokens: np.ndarray, states: Sequence[np.ndarray], *args: Any) -> Any:
        assert len(states) == 2, "beam search takes prefix states"
        return super().beam(tokens, states, *args)


def operations(slice_seconds: float) -> Operations:
    base = model()
    return Operations(
        LoadedModel(base.spec, CachingCompute(base.spec)), slice_seconds, lambda: True, None
    )


def answer(ops: Operations, kind: str, key: Hashable, job: Any) -> Any:
    """Run `job` to its answer, a slice at a time when it is sliced."""
    payloads = [job]
    for _ in range(1000):
        result = getattr(ops, kind)(key, payloads)[0]
        if not isinstance(result, Continue):
            return result
        payloads = [result.payload]
    raise AssertionError("never answered")


def prefix() -> tuple[np.ndarray, ...]:
    return (np.full(3, 2.0, np.float32), np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("kept", [False, True])
def test_sliced_generate_and_run_answer_as_whole(kept: bool) -> None:
    states = prefix()
    if kept:
        states = (*states, np.full(1, 5.0, np.float32))
    whole, sliced = operations(0.0), operations(1e-9)  # 0: never sliced
    key = (False, GREEDY.group)
    for kind, job in (
        ("generate", GenerateJob(states, 1, 12, GREEDY)),
        ("run", RunJob(states, [1, 2, 3, 4, 5, 6, 7, 1, 2, 3])),
    ):
        a, b = answer(whole, kind, key, job), answer(sliced, kind, key, job)
        assert a.outputs == b.outputs
        assert len(a.states) == len(b.states) == 3  # given back extended
        for x, y in zip(a.states, b.states, strict=True):
            np.testing.assert_array_equal(x, y)
        steps = len(a.outputs)
        assert float(a.states[2][0]) == (5.0 if kept else 0.0) + steps


def test_beam_search_gets_prefix_states_from_extended_ones() -> None:
    ops = operations(0.0)
    beam = Decoding(strategy="beam", beam_width=2)
    states = (*prefix(), np.zeros(1, np.float32))
    row = answer(ops, "generate", (False, beam.group), GenerateJob(states, 1, 3, beam, 2))
    assert len(row.states) == 2 and len(row.outputs) == 3
