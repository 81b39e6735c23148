"""Greedy and sampled decoding in slices.

A `Progress` holds one job's decode between slices: what every row has emitted so far
and, for rows still running, the token to feed next, their states, the steps left and
their sampling streams' positions. `advance` runs one slice over every running row of
many jobs at once (one `generate` call per memory shape: rows of attention models with
other source lengths cannot share a call), then applies each call's results, all
vectorised. A sampled row draws at its stream's position, so its tokens are the whole
decode's. Each row runs at most the slice's steps; a row with fewer left ends inside
the slice and its job answers when the slice returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from service.inference.model.interface import Compute, Decoded, Decoding, Sampling, States
from service.inference.serving.decoding import RowDecoded, by_length, sampling
from service.inference.serving.slicing.clock import SliceClock
from service.inference.serving.slicing.outputs import Outputs

Shape = tuple[int, ...]


@dataclass
class Lane:
    """Running rows of one job that share a memory shape."""

    rows: np.ndarray  # (A,) int: the job's row index of each running row
    tokens: np.ndarray  # (A,) int32: the token to feed next
    states: States  # each (A, ...)
    remaining: np.ndarray  # (A,) int32: steps left
    offsets: np.ndarray  # (A,) int32: sampling stream positions of the next step


def shape(states: States) -> Shape:
    """What rows must share to be stacked into one call: the last state's shape (an
    attention memory's time dimension is its source's length)."""
    return states[-1].shape[1:]


@dataclass
class Progress:
    """One job's decode between slices."""

    params: Sampling | None  # per job row; offsets are the first step's
    outputs: Outputs
    lanes: list[Lane] = field(default_factory=list)

    @property
    def running(self) -> int:
        return sum(len(lane.rows) for lane in self.lanes)

    def results(self) -> list[RowDecoded]:
        return self.outputs.results()


def _progress(
    rows: int, limits: Sequence[int], probs: bool, width: int, decoding: Sequence[Decoding]
) -> Progress:
    params = sampling(decoding) if decoding[0].strategy == "sample" else None
    return Progress(params, Outputs.empty(rows, max(limits), width, probs, None))


def _lane(
    progress: Progress, rows: np.ndarray, tokens: np.ndarray, states: States, limits: np.ndarray
) -> Lane:
    offsets = progress.params.offsets[rows] if progress.params is not None else np.zeros(len(rows))
    return Lane(rows, tokens.astype(np.int32), list(states), limits[rows], offsets.astype(np.int32))


def start(
    tokens: np.ndarray,
    states: States,
    limits: Sequence[int],
    probs: bool,
    width: int,
    decoding: Sequence[Decoding],
) -> Progress:
    """A decode from `tokens` and `states`, one row each; keeps each row's final state."""
    progress = _progress(len(tokens), limits, probs, width, decoding)
    progress.outputs.final = [np.array(s, copy=True) for s in states]
    rows = np.arange(len(tokens))
    progress.lanes.append(_lane(progress, rows, tokens, states, np.asarray(limits, np.int32)))
    return progress


def start_decode(
    compute: Compute,
    sources: Sequence[Sequence[int]],
    limits: Sequence[int],
    probs: bool,
    width: int,
    decoding: Sequence[Decoding],
    start_id: int,
) -> Progress:
    """Encode same-length sources together (one lane per source length), then decode
    from the start token."""
    progress = _progress(len(sources), limits, probs, width, decoding)
    limits_array = np.asarray(limits, np.int32)
    for indices in by_length(sources).values():
        rows = np.asarray(indices)
        states = compute.encode(np.asarray([sources[i] for i in indices], dtype=np.int32))
        tokens = np.full(len(indices), start_id, np.int32)
        progress.lanes.append(_lane(progress, rows, tokens, states, limits_array))
    return progress


def advance(
    compute: Compute,
    progresses: Sequence[Progress],
    probs: bool,
    clock: SliceClock,
    end: int | None,
    contended: Callable[[], bool],
) -> int:
    """One slice for every running row of `progresses`; returns the decoder steps run
    (one per token emitted). Nothing changes unless every call succeeds."""
    calls: dict[Shape, list[tuple[Progress, Lane]]] = {}
    for progress in progresses:
        for lane in progress.lanes:
            calls.setdefault(shape(lane.states), []).append((progress, lane))
    outcomes = []
    for lanes in calls.values():
        remaining = np.concatenate([lane.remaining for _, lane in lanes])
        longest = int(remaining.max())
        steps = min(clock.steps(len(remaining), contended()), longest) if clock.target else longest
        began = time.perf_counter()
        decoded = compute.generate(
            np.concatenate([lane.tokens for _, lane in lanes]),
            [np.concatenate(c) for c in zip(*(lane.states for _, lane in lanes), strict=True)],
            np.minimum(remaining, steps),
            probs,
            _params(lanes),
        )
        clock.record(len(remaining), decoded.tokens.shape[1], time.perf_counter() - began)
        outcomes.append((lanes, decoded))
    ran = 0
    for lanes, decoded in outcomes:
        ran += int(decoded.lengths.sum())
        first = 0
        for progress, lane in lanes:
            size = len(lane.rows)
            _apply(progress.outputs, lane, decoded, slice(first, first + size), end)
            first += size
    for progress in progresses:
        progress.lanes = [lane for lane in progress.lanes if len(lane.rows)]
    return ran


def _params(lanes: list[tuple[Progress, Lane]]) -> Sampling | None:
    parts = [(progress.params, lane) for progress, lane in lanes if progress.params is not None]
    if not parts:
        return None
    return Sampling(
        temperature=np.concatenate([p.temperature[lane.rows] for p, lane in parts]),
        top_k=np.concatenate([p.top_k[lane.rows] for p, lane in parts]),
        top_p=np.concatenate([p.top_p[lane.rows] for p, lane in parts]),
        seeds=np.concatenate([p.seeds[lane.rows] for p, lane in parts]),
        offsets=np.concatenate([lane.offsets for _, lane in parts]).astype(np.int32),
    )


def _apply(outputs: Outputs, lane: Lane, decoded: Decoded, rows: slice, end: int | None) -> None:
    """Write one lane's share of a call's results; ended rows leave the lane."""
    tokens, counts = decoded.tokens[rows], decoded.lengths[rows]
    assert decoded.scores is not None
    scores = decoded.scores[rows]
    probabilities = None if decoded.probabilities is None else decoded.probabilities[rows]
    written = outputs.lengths[lane.rows]
    for j in range(tokens.shape[1]):
        ran = counts > j
        target, position = lane.rows[ran], written[ran] + j
        outputs.tokens[target, position] = tokens[ran, j]
        outputs.scores[target, position] = scores[ran, j]
        if outputs.probabilities is not None and probabilities is not None:
            outputs.probabilities[target, position] = probabilities[ran, j]
    outputs.lengths[lane.rows] = written + counts
    states = [s[rows] for s in decoded.states]
    if outputs.final is not None:
        for keep, new in zip(outputs.final, states, strict=True):
            keep[lane.rows] = new
    last = tokens[np.arange(len(counts)), np.maximum(counts - 1, 0)]
    remaining = lane.remaining - counts
    going = remaining > 0
    if end is not None:
        going &= last != end
    lane.rows = lane.rows[going]
    lane.tokens = last[going].astype(np.int32)
    lane.states = [s[going] for s in states]
    lane.remaining = remaining[going]
    lane.offsets = (lane.offsets + counts)[going].astype(np.int32)
