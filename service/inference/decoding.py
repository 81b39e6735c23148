"""Batch helpers over `Compute`: group by length, convert results to Python lists.

Sequences of different lengths are never padded together: they are grouped by
length so that no sequence can change another's result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.inference.base import Compute, Decoded, States


@dataclass
class StepRun:
    outputs: list[list[int]]
    probabilities: list[list[list[float]]] | None
    states: States


def by_length(sequences: Sequence[Sequence[int]]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for index, sequence in enumerate(sequences):
        groups[len(sequence)].append(index)
    return groups


def rows(decoded: Decoded) -> tuple[list[list[int]], list[list[list[float]]] | None]:
    tokens = decoded.tokens.tolist()
    outputs = [row[:n] for row, n in zip(tokens, decoded.lengths.tolist(), strict=True)]
    if decoded.probabilities is None:
        return outputs, None
    probs = decoded.probabilities.astype(float)
    return outputs, [probs[i, :n].tolist() for i, n in enumerate(decoded.lengths.tolist())]


def greedy_decode(
    compute: Compute,
    sources: Sequence[Sequence[int]],
    max_steps: int | Sequence[int],
    with_probabilities: bool,
) -> tuple[list[list[int]], list[list[list[float]]] | None]:
    """Encode every source once, then step the decoder feeding back the argmax token."""
    limits = np.broadcast_to(np.asarray(max_steps, dtype=np.int32), (len(sources),))
    outputs: list[list[int]] = [[] for _ in sources]
    probabilities: list[list[list[float]]] | None = (
        [[] for _ in sources] if with_probabilities else None
    )
    for indices in by_length(sources).values():
        batch = np.asarray([sources[i] for i in indices], dtype=np.int32)
        group_out, group_probs = rows(compute.decode(batch, limits[indices], with_probabilities))
        for row, i in enumerate(indices):
            outputs[i] = group_out[row]
            if probabilities is not None and group_probs is not None:
                probabilities[i] = group_probs[row]
    return outputs, probabilities


def generate(
    compute: Compute,
    tokens: np.ndarray,
    states: States,
    max_steps: int | Sequence[int],
    with_probabilities: bool,
) -> StepRun:
    limits = np.broadcast_to(np.asarray(max_steps, dtype=np.int32), (len(tokens),))
    decoded = compute.generate(tokens, states, limits, with_probabilities)
    outputs, probabilities = rows(decoded)
    return StepRun(outputs, probabilities, decoded.states)


def run_steps(
    compute: Compute,
    states: States,
    sequences: Sequence[Sequence[int]],
    with_probabilities: bool,
) -> StepRun:
    """Feed each sequence one token per step from `states` (one row per sequence)."""
    outputs: list[list[int]] = [[] for _ in sequences]
    probabilities: list[list[list[float]]] | None = (
        [[] for _ in sequences] if with_probabilities else None
    )
    final_states = [np.array(s, copy=True) for s in states]
    for indices in by_length(sequences).values():
        picked = np.asarray(indices)
        tokens = np.asarray([sequences[i] for i in indices], dtype=np.int32)
        decoded = compute.run(tokens, [s[picked] for s in states], with_probabilities)
        group_out, group_probs = rows(decoded)
        for row, i in enumerate(indices):
            outputs[i] = group_out[row]
            if probabilities is not None and group_probs is not None:
                probabilities[i] = group_probs[row]
        for final, new in zip(final_states, decoded.states, strict=True):
            final[picked] = new
    return StepRun(outputs, probabilities, final_states)
