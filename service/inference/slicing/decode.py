"""Greedy and sampled decoding in slices: a decode is cut into graph calls of a few
steps each, so the batcher can run other work and admit new rows between them.

A `Progress` holds one job's decode between slices: what every row has emitted so far
and, for rows still running, the token to feed next, their states, the steps left and
their sampling streams' positions. `advance` runs one slice over every running row of
many jobs at once (one `generate` call per memory shape: rows of attention models with
other source lengths cannot share a call), then applies each call's results, all
vectorised. A slice's numbers equal the whole decode's: each step is the same graph
step from the same states and tokens, and a sampled row draws at its stream position.

How many steps a slice runs comes from `SliceClock`: the measured seconds per step at
the batch's size, aiming at `target` seconds per slice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from service.inference.base import Compute, Decoded, Decoding, Sampling, States
from service.inference.decoding import Hypothesis, RowDecoded, by_length, sampling

FIRST_SLICE_STEPS = 4  # before a batch size's step time is known
ALONE = 10  # slices run this many times longer while no other work waits
MEASURED_STEPS = 4  # shorter calls are mostly fixed cost: they teach nothing


class SliceClock:
    """Steps per slice so that a slice takes about `target` seconds while other work
    waits, ALONE times that while none does (0: unsliced), from a moving average of
    the seconds per step at each batch size (by power of 2)."""

    def __init__(self, target: float):
        self.target = target
        self._per_step: dict[int, float] = {}

    @staticmethod
    def _bucket(rows: int) -> int:
        return max(rows - 1, 0).bit_length()

    def steps(self, rows: int, contended: bool) -> int:
        per_step = self._per_step.get(self._bucket(rows))
        if per_step is None:
            return FIRST_SLICE_STEPS
        target = self.target if contended else self.target * ALONE
        return max(1, int(target / per_step))

    def record(self, rows: int, steps: int, seconds: float) -> None:
        if steps < MEASURED_STEPS:
            return
        bucket, sample = self._bucket(rows), seconds / steps
        known = self._per_step.get(bucket)
        self._per_step[bucket] = sample if known is None else 0.8 * known + 0.2 * sample


@dataclass
class Lane:
    """Running rows of one job that share a memory shape."""

    rows: np.ndarray  # (A,) int: the job's row index of each running row
    tokens: np.ndarray  # (A,) int32: the token to feed next
    states: States  # each (A, ...)
    remaining: np.ndarray  # (A,) int32: steps left
    offsets: np.ndarray  # (A,) int32: sampling stream positions of the next step

    @property
    def shape(self) -> tuple[int, ...] | None:
        """What rows must share to be stacked into one call (the memory's shape)."""
        return None if not self.states else self.states[-1].shape[1:]


@dataclass
class Progress:
    """One job's decode between slices."""

    params: Sampling | None  # per job row; offsets are the first step's
    tokens: np.ndarray  # (N, S) int32
    scores: np.ndarray  # (N, S) float32
    probabilities: np.ndarray | None  # (N, S, V) float32, if asked
    lengths: np.ndarray  # (N,) int32: tokens emitted so far
    final: States | None  # each row's state after its last token, if kept
    lanes: list[Lane] = field(default_factory=list)

    @property
    def running(self) -> int:
        return sum(len(lane.rows) for lane in self.lanes)

    def results(self) -> list[RowDecoded]:
        result = []
        probabilities = None if self.probabilities is None else self.probabilities.astype(float)
        for i, n in enumerate(self.lengths.tolist()):
            steps = self.scores[i, :n].astype(float).tolist()
            result.append(
                RowDecoded(
                    [Hypothesis(self.tokens[i, :n].tolist(), float(sum(steps)), steps)],
                    None if probabilities is None else probabilities[i, :n].tolist(),
                    () if self.final is None else tuple(s[i].copy() for s in self.final),
                )
            )
        return result


def _progress(
    rows: int,
    limits: Sequence[int],
    probs: bool,
    width: int,
    decoding: Sequence[Decoding],
    final: States | None,
) -> Progress:
    steps = max(limits)
    return Progress(
        params=sampling(decoding) if decoding[0].strategy == "sample" else None,
        tokens=np.zeros((rows, steps), np.int32),
        scores=np.zeros((rows, steps), np.float32),
        probabilities=np.zeros((rows, steps, width), np.float32) if probs else None,
        lengths=np.zeros(rows, np.int32),
        final=final,
    )


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
    rows = len(tokens)
    final = [np.array(s, copy=True) for s in states]
    progress = _progress(rows, limits, probs, width, decoding, final)
    limits_array = np.asarray(limits, np.int32)
    progress.lanes.append(_lane(progress, np.arange(rows), tokens, states, limits_array))
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
    progress = _progress(len(sources), limits, probs, width, decoding, None)
    limits_array = np.asarray(limits, np.int32)
    for indices in by_length(sources).values():
        rows = np.asarray(indices)
        states = compute.encode(np.asarray([sources[i] for i in indices], dtype=np.int32))
        tokens = np.full(len(indices), start_id, np.int32)
        progress.lanes.append(_lane(progress, rows, tokens, states, limits_array))
    return progress


@dataclass
class _Call:
    """One generate call's rows: (progress, lane) pairs stacked in order."""

    lanes: list[tuple[Progress, Lane]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(len(lane.rows) for _, lane in self.lanes)


def advance(
    compute: Compute,
    progresses: Sequence[Progress],
    probs: bool,
    clock: SliceClock,
    end: int | None,
    contended: Callable[[], bool],
) -> int:
    """One slice for every running row of `progresses`; returns the decoder steps run
    (rows x steps). A slice stops where the first of its jobs is done, so a short
    request leaves as soon as it can. Nothing changes unless every call succeeds."""
    calls: dict[tuple[int, ...] | None, _Call] = {}
    for progress in progresses:
        for lane in progress.lanes:
            calls.setdefault(lane.shape, _Call()).lanes.append((progress, lane))
    outcomes = []
    for call in calls.values():
        lanes = [lane for _, lane in call.lanes]
        remaining = np.concatenate([lane.remaining for lane in lanes])
        if clock.target > 0:
            steps = min(clock.steps(call.rows, contended()), int(remaining.min()))
        else:
            steps = int(remaining.max())
        params = _params(call)
        began = time.perf_counter()
        decoded = compute.generate(
            np.concatenate([lane.tokens for lane in lanes]),
            [
                np.concatenate(column)
                for column in zip(*(lane.states for lane in lanes), strict=True)
            ],
            np.minimum(remaining, steps),
            probs,
            params,
        )
        clock.record(call.rows, decoded.tokens.shape[1], time.perf_counter() - began)
        outcomes.append((call, decoded))
    ran = 0
    for call, decoded in outcomes:
        ran += int(decoded.lengths.sum())
        start_row = 0
        for progress, lane in call.lanes:
            size = len(lane.rows)
            _apply(progress, lane, decoded, slice(start_row, start_row + size), end)
            start_row += size
    for progress in progresses:
        progress.lanes = [lane for lane in progress.lanes if len(lane.rows)]
    return ran


def _params(call: _Call) -> Sampling | None:
    first = call.lanes[0][0].params
    if first is None:
        return None
    parts = [(progress.params, lane) for progress, lane in call.lanes]
    return Sampling(
        temperature=np.concatenate([p.temperature[lane.rows] for p, lane in parts if p]),
        top_k=np.concatenate([p.top_k[lane.rows] for p, lane in parts if p]),
        top_p=np.concatenate([p.top_p[lane.rows] for p, lane in parts if p]),
        seeds=np.concatenate([p.seeds[lane.rows] for p, lane in parts if p]),
        offsets=np.concatenate([lane.offsets for _, lane in parts]).astype(np.int32),
    )


def _apply(progress: Progress, lane: Lane, decoded: Decoded, rows: slice, end: int | None) -> None:
    """Write one lane's share of a call's results into its progress; ended rows leave."""
    tokens, scores = decoded.tokens[rows], decoded.scores
    assert scores is not None
    scores = scores[rows]
    counts = decoded.lengths[rows]
    written = progress.lengths[lane.rows]
    for j in range(tokens.shape[1]):
        ran = counts > j
        target, position = lane.rows[ran], written[ran] + j
        progress.tokens[target, position] = tokens[ran, j]
        progress.scores[target, position] = scores[ran, j]
        if progress.probabilities is not None:
            assert decoded.probabilities is not None
            progress.probabilities[target, position] = decoded.probabilities[rows][ran, j]
    progress.lengths[lane.rows] = written + counts
    states = [s[rows] for s in decoded.states]
    if progress.final is not None:
        for keep, new in zip(progress.final, states, strict=True):
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
