"""Batch helpers over `Compute`: group by length, pick each row's strategy's graph call,
convert results to per-row Python values.

Sequences of different lengths are never padded together: they are grouped by
length so that no sequence can change another's result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.inference.model.interface import (
    GREEDY,
    Beams,
    Compute,
    Decoded,
    Decoding,
    Sampling,
    States,
)


@dataclass
class Hypothesis:
    tokens: list[int]
    score: float  # log-probability of the whole sequence
    step_scores: list[float]  # of each token


@dataclass
class RowDecoded:
    """One row's result: its hypotheses, best first (more than one only for beam search
    with num_return_sequences), the probabilities of the first's steps if asked, and
    (generate and run) the state after the first's last token."""

    hypotheses: list[Hypothesis]
    probabilities: list[list[float]] | None = None
    states: tuple[np.ndarray, ...] = ()

    @property
    def outputs(self) -> list[int]:
        return self.hypotheses[0].tokens


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


def _row_states(states: States, i: int) -> tuple[np.ndarray, ...]:
    return tuple(s[i].copy() for s in states)


def decoded_rows(decoded: Decoded) -> list[RowDecoded]:
    outputs, probabilities = rows(decoded)
    assert decoded.scores is not None
    scores = decoded.scores.astype(float)
    result = []
    for i, out in enumerate(outputs):
        steps = scores[i, : len(out)].tolist()
        result.append(
            RowDecoded(
                [Hypothesis(out, float(sum(steps)), steps)],
                probabilities[i] if probabilities is not None else None,
                _row_states(decoded.states, i) if decoded.states else (),
            )
        )
    return result


def beam_rows(beams: Beams, wanted: Sequence[int] | None = None) -> list[RowDecoded]:
    """`wanted[i]`: how many hypotheses row i returns (default: every one that exists)."""
    result = []
    lengths, scores = beams.lengths.tolist(), beams.scores.astype(float).tolist()
    for i in range(len(lengths)):
        found = [j for j, n in enumerate(lengths[i]) if n > 0]
        if wanted is not None:
            found = found[: wanted[i]]
        hypotheses = [
            Hypothesis(
                beams.tokens[i, j, : lengths[i][j]].tolist(),
                scores[i][j],
                beams.step_scores[i, j, : lengths[i][j]].astype(float).tolist(),
            )
            for j in found
        ]
        states = _row_states(beams.states, i) if beams.states else ()
        result.append(RowDecoded(hypotheses, None, states))
    return result


def sampling(decoding: Sequence[Decoding]) -> Sampling:
    return Sampling(
        temperature=np.asarray([d.temperature for d in decoding], np.float32),
        top_k=np.asarray([d.top_k for d in decoding], np.int32),
        top_p=np.asarray([d.top_p for d in decoding], np.float32),
        seeds=np.asarray([d.seed for d in decoding], np.uint64),
        offsets=np.asarray([d.offset for d in decoding], np.int32),
    )


def _alpha(decoding: Sequence[Decoding]) -> np.ndarray:
    return np.asarray([d.length_penalty for d in decoding], np.float32)


def _one_group(decoding: Sequence[Decoding]) -> Decoding:
    first = decoding[0]
    assert all(d.group == first.group for d in decoding), "rows of different groups"
    return first


def decode(
    compute: Compute,
    sources: Sequence[Sequence[int]],
    limits: Sequence[int],
    probs: bool,
    decoding: Sequence[Decoding],
    wanted: Sequence[int] | None = None,
) -> list[RowDecoded]:
    """Encode every source once, then decode each by its row's strategy (every row of
    one call in the same `Decoding.group`). `wanted`: beam hypotheses per row."""
    first = _one_group(decoding)
    steps = np.asarray(limits, dtype=np.int32)
    result: list[RowDecoded | None] = [None] * len(sources)
    for indices in by_length(sources).values():
        batch = np.asarray([sources[i] for i in indices], dtype=np.int32)
        picked = [decoding[i] for i in indices]
        if first.strategy == "beam":
            beams = compute.beam_decode(batch, steps[indices], first.beam_width, _alpha(picked))
            group = beam_rows(beams, [wanted[i] for i in indices] if wanted else None)
        else:
            chosen = sampling(picked) if first.strategy == "sample" else None
            group = decoded_rows(compute.decode(batch, steps[indices], probs, chosen))
        for row, i in enumerate(indices):
            result[i] = group[row]
    return [r for r in result if r is not None]


def generate_rows(
    compute: Compute,
    tokens: np.ndarray,
    states: States,
    limits: Sequence[int],
    probs: bool,
    decoding: Sequence[Decoding],
    wanted: Sequence[int] | None = None,
) -> list[RowDecoded]:
    """Feed `tokens`, then each row's chosen tokens, from `states` (one row each)."""
    first = _one_group(decoding)
    steps = np.asarray(limits, dtype=np.int32)
    if first.strategy == "beam":
        beams = compute.beam(tokens, states, steps, first.beam_width, _alpha(decoding))
        return beam_rows(beams, wanted)
    chosen = sampling(decoding) if first.strategy == "sample" else None
    return decoded_rows(compute.generate(tokens, states, steps, probs, chosen))


def greedy_decode(
    compute: Compute,
    sources: Sequence[Sequence[int]],
    max_steps: int | Sequence[int],
    with_probabilities: bool,
) -> tuple[list[list[int]], list[list[list[float]]] | None]:
    """Encode every source once, then step the decoder feeding back the argmax token."""
    limits = np.broadcast_to(np.asarray(max_steps, dtype=np.int32), (len(sources),))
    decoded = decode(compute, sources, limits.tolist(), with_probabilities, [GREEDY] * len(sources))
    probabilities = [r.probabilities or [] for r in decoded] if with_probabilities else None
    return [r.outputs for r in decoded], probabilities


def generate(
    compute: Compute,
    tokens: np.ndarray,
    states: States,
    max_steps: int | Sequence[int],
    with_probabilities: bool,
) -> StepRun:
    """Greedy `generate_rows` as batch arrays: outputs, probabilities, final states."""
    limits = np.broadcast_to(np.asarray(max_steps, dtype=np.int32), (len(tokens),))
    decoded = compute.generate(tokens, states, limits, with_probabilities)
    outputs, probabilities = rows(decoded)
    return StepRun(outputs, probabilities, decoded.states)


def run_rows(
    compute: Compute,
    states: States,
    sequences: Sequence[Sequence[int]],
    with_probabilities: bool,
) -> list[RowDecoded]:
    """Feed each sequence one token per step from `states` (one row per sequence)."""
    result: list[RowDecoded | None] = [None] * len(sequences)
    for indices in by_length(sequences).values():
        picked = np.asarray(indices)
        tokens = np.asarray([sequences[i] for i in indices], dtype=np.int32)
        decoded = compute.run(tokens, [s[picked] for s in states], with_probabilities)
        for row, i in zip(decoded_rows(decoded), indices, strict=True):
            result[i] = row
    return [r for r in result if r is not None]


def run_steps(
    compute: Compute,
    states: States,
    sequences: Sequence[Sequence[int]],
    with_probabilities: bool,
) -> StepRun:
    """`run_rows` as batch arrays: outputs, probabilities, final states per row."""
    decoded = run_rows(compute, states, sequences, with_probabilities)
    probabilities = [r.probabilities or [] for r in decoded] if with_probabilities else None
    final = [np.stack(column) for column in zip(*(r.states for r in decoded), strict=True)]
    return StepRun([r.outputs for r in decoded], probabilities, final)
