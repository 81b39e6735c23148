"""Teacher-forced runs in slices: each row's given tokens are fed a few steps per call.

A `RunProgress` holds one job's run between slices. Its rows are grouped by length
(a lane: a rectangle of tokens at one position), and a slice feeds the same number of
steps from every lane of every job it takes, so runs of different lengths share calls.
Unsliced (a zero clock target), each lane runs whole in a call of its own length.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from service.inference.model.interface import Compute, Decoded, States
from service.inference.serving.decoding import RowDecoded, by_length
from service.inference.serving.slicing.clock import SliceClock
from service.inference.serving.slicing.decode import Shape, shape
from service.inference.serving.slicing.outputs import Outputs


@dataclass
class RunLane:
    rows: np.ndarray  # (A,) int: the job's row index of each row
    tokens: np.ndarray  # (A, L) int32: the tokens to feed
    states: States  # each (A, ...): after the tokens fed so far
    position: int = 0  # tokens fed so far

    @property
    def remaining(self) -> int:
        return int(self.tokens.shape[1]) - self.position


@dataclass
class RunProgress:
    outputs: Outputs
    lanes: list[RunLane] = field(default_factory=list)

    @property
    def running(self) -> int:
        return sum(len(lane.rows) for lane in self.lanes)

    def results(self) -> list[RowDecoded]:
        return self.outputs.results()


def start_run(
    states: States, sequences: Sequence[Sequence[int]], probs: bool, width: int
) -> RunProgress:
    """Feed each sequence from its row of `states`; keeps each row's final state."""
    final = [np.array(s, copy=True) for s in states]
    outputs = Outputs.empty(len(sequences), max(map(len, sequences)), width, probs, final)
    outputs.lengths[:] = [len(s) for s in sequences]
    progress = RunProgress(outputs)
    for indices in by_length(sequences).values():
        rows = np.asarray(indices)
        tokens = np.asarray([sequences[i] for i in indices], np.int32)
        progress.lanes.append(RunLane(rows, tokens, [s[rows] for s in states]))
    return progress


def advance_runs(
    compute: Compute,
    progresses: Sequence[RunProgress],
    probs: bool,
    clock: SliceClock,
    contended: Callable[[], bool],
) -> int:
    """One slice of every lane of `progresses`; returns the steps run (rows x tokens).
    Nothing changes unless every call succeeds."""
    calls: dict[tuple[Shape, int], list[tuple[RunProgress, RunLane]]] = {}
    for progress in progresses:
        for lane in progress.lanes:
            whole = 0 if clock.target > 0 else lane.remaining  # unsliced: by length
            calls.setdefault((shape(lane.states), whole), []).append((progress, lane))
    outcomes = []
    for lanes in calls.values():
        rows = sum(len(lane.rows) for _, lane in lanes)
        steps = min(lane.remaining for _, lane in lanes)
        if clock.target > 0:
            steps = min(steps, clock.steps(rows, contended()))
        began = time.perf_counter()
        tokens = [lane.tokens[:, lane.position : lane.position + steps] for _, lane in lanes]
        states = [np.concatenate(c) for c in zip(*(lane.states for _, lane in lanes), strict=True)]
        decoded = compute.run(np.concatenate(tokens), states, probs)
        clock.record(rows, steps, time.perf_counter() - began)
        outcomes.append((lanes, decoded))
    ran = 0
    for lanes, decoded in outcomes:
        ran += int(decoded.tokens.size)
        first = 0
        for progress, lane in lanes:
            size = len(lane.rows)
            _apply(progress.outputs, lane, decoded, slice(first, first + size))
            first += size
    for progress in progresses:
        progress.lanes = [lane for lane in progress.lanes if lane.remaining > 0]
    return ran


def _apply(outputs: Outputs, lane: RunLane, decoded: Decoded, rows: slice) -> None:
    steps = decoded.tokens.shape[1]
    span = slice(lane.position, lane.position + steps)
    outputs.tokens[lane.rows, span] = decoded.tokens[rows]
    assert decoded.scores is not None
    outputs.scores[lane.rows, span] = decoded.scores[rows]
    if outputs.probabilities is not None and decoded.probabilities is not None:
        outputs.probabilities[lane.rows, span] = decoded.probabilities[rows]
    lane.states = [s[rows] for s in decoded.states]
    lane.position += steps
    if lane.remaining == 0 and outputs.final is not None:
        for keep, new in zip(outputs.final, lane.states, strict=True):
            keep[lane.rows] = new
