"""Greedy decoding and step runs over the `Compute` protocol (numpy only).

Sequences of different lengths are never padded together: they are grouped by
length so that no sequence can change another's result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.inference.base import Compute, ModelSpec, States


@dataclass
class StepRun:
    """Result of feeding tokens one step at a time."""

    outputs: list[list[int]]
    probabilities: list[list[list[float]]] | None
    states: States


def _by_length(sequences: Sequence[Sequence[int]]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for index, sequence in enumerate(sequences):
        groups[len(sequence)].append(index)
    return groups


def greedy_decode(
    compute: Compute,
    spec: ModelSpec,
    sources: Sequence[Sequence[int]],
    max_steps: int,
    with_probabilities: bool,
) -> tuple[list[list[int]], list[list[list[float]]] | None]:
    """Encode every source once, then step the decoder feeding back the argmax token."""
    manifest = spec.manifest
    assert manifest.start_token is not None
    outputs: list[list[int]] = [[] for _ in sources]
    probabilities: list[list[list[float]]] | None = (
        [[] for _ in sources] if with_probabilities else None
    )
    for indices in _by_length(sources).values():
        batch = np.asarray([sources[i] for i in indices], dtype=np.int32)
        states = compute.encode(batch)
        tokens = np.full(len(indices), manifest.start_token, dtype=np.int32)
        run = generate(compute, spec, tokens, states, max_steps, with_probabilities)
        for row, i in enumerate(indices):
            outputs[i] = run.outputs[row]
            if probabilities is not None and run.probabilities is not None:
                probabilities[i] = run.probabilities[row]
    return outputs, probabilities


def generate(
    compute: Compute,
    spec: ModelSpec,
    tokens: np.ndarray,
    states: States,
    max_steps: int,
    with_probabilities: bool,
) -> StepRun:
    """Feed `tokens`, then each chosen token, for up to `max_steps` steps.

    A row stops after emitting the end token (which is included in its output);
    the loop ends when every row has stopped.
    """
    end_token = spec.manifest.end_token
    batch = len(tokens)
    outputs: list[list[int]] = [[] for _ in range(batch)]
    probabilities: list[list[list[float]]] | None = (
        [[] for _ in range(batch)] if with_probabilities else None
    )
    done = np.zeros(batch, dtype=bool)
    final_states = [s.copy() for s in states]
    for _ in range(max_steps):
        probs, states = compute.step(tokens, states)
        tokens = np.argmax(probs, axis=-1).astype(np.int32)
        for row in np.flatnonzero(~done):
            outputs[row].append(int(tokens[row]))
            if probabilities is not None:
                probabilities[row].append(probs[row].astype(float).tolist())
            for final, new in zip(final_states, states, strict=True):
                final[row] = new[row]
        if end_token is not None:
            done |= tokens == end_token
            if done.all():
                break
    return StepRun(outputs, probabilities, final_states)


def run_steps(
    compute: Compute,
    states: States,
    sequences: Sequence[Sequence[int]],
    with_probabilities: bool,
) -> StepRun:
    """Feed each sequence one token per step from `states` (one row per sequence).

    Returns the argmax prediction after every input and the states after the
    last input of each sequence.
    """
    outputs: list[list[int]] = [[] for _ in sequences]
    probabilities: list[list[list[float]]] | None = (
        [[] for _ in sequences] if with_probabilities else None
    )
    final_states = [s.copy() for s in states]
    for length, indices in _by_length(sequences).items():
        rows = np.asarray(indices)
        group_states = [s[rows] for s in states]
        tokens = np.asarray([sequences[i] for i in indices], dtype=np.int32)
        for t in range(length):
            probs, group_states = compute.step(tokens[:, t], group_states)
            chosen = np.argmax(probs, axis=-1)
            for row, i in enumerate(indices):
                outputs[i].append(int(chosen[row]))
                if probabilities is not None:
                    probabilities[i].append(probs[row].astype(float).tolist())
        for final, new in zip(final_states, group_states, strict=True):
            final[rows] = new
    return StepRun(outputs, probabilities, final_states)
