"""What a model's batchers run on the compute thread, one group of jobs at a time.

A job that fits in one slice (its steps within what the slice clock allows now) runs
whole, in the fused graph call it always had: the encoder and the whole greedy loop
in one call for a predict, one call for a session's steps. A longer job starts a
`Progress` and advances a slice per iteration, together with every other running job
of its group, and answers `Continue` until it is done (service/inference/serving/slicing/).
Beam search and encodes always run whole. Nothing changes a job's state unless the
group's every call succeeded, so the batcher can run a failed group again job by job.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Counter

from service.inference.model.interface import LoadedModel, States
from service.inference.serving.decoding import RowDecoded, decode, generate_rows, run_rows
from service.inference.serving.jobs import Carried, Continue, GenerateJob, PredictJob, RunJob
from service.inference.serving.slicing.clock import SliceClock
from service.inference.serving.slicing.decode import Progress, advance, start, start_decode
from service.inference.serving.slicing.run import RunProgress, advance_runs, start_run

Running = Progress | RunProgress


def probs_of(key: Hashable) -> bool:
    return bool(key[0] if isinstance(key, tuple) else key)


def _sliceable(key: Hashable) -> bool:
    """Greedy and sampled decodes run in slices; beam search runs whole."""
    return isinstance(key, tuple) and key[1][0] != "beam"


def _stack(states: Sequence[Carried]) -> States:
    return [np.stack(column) for column in zip(*states, strict=True)]


@dataclass(frozen=True, eq=False)
class _Kind:
    """How one operation's jobs run whole, how long they are, and how they slice."""

    whole: Callable[[Sequence[Any], bool], list[Any]]
    steps: Callable[[Any], int]
    begin: Callable[[Any, bool], Running]
    answer: Callable[[Running], Any]
    clock: SliceClock


class Operations:
    def __init__(
        self,
        model: LoadedModel,
        slice_seconds: float,
        contended: Callable[[], bool],
        steps: Counter | None,
    ):
        self.model = model
        self._contended = contended
        self._steps = steps
        decodes, runs = SliceClock(slice_seconds), SliceClock(slice_seconds)
        if model.spec.manifest.kind == "step":  # a predict is a run from zero states
            predict = _Kind(
                self._whole_step_predict, _longest, self._begin_step_predict, _rows, runs
            )
        else:
            predict = _Kind(self._whole_predict, _max_steps, self._begin_predict, _rows, decodes)
        self._predict = predict
        self._generate = _Kind(
            self._whole_generate, _max_steps, self._begin_generate, _first_row, decodes
        )
        self._run = _Kind(self._whole_run, _tokens, self._begin_run, _first_row, runs)
        self._gave_way: set[_Kind] = set()  # kinds whose running jobs waited last time

    # ---- one entry point per batcher -----------------------------------------------

    def predict(self, key: Hashable, jobs: Sequence[Any]) -> list[Any]:
        if self.model.spec.manifest.kind == "seq2seq" and not _sliceable(key):
            return self._whole_predict(jobs, probs_of(key))
        return self._process(self._predict, jobs, probs_of(key))

    def generate(self, key: Hashable, jobs: Sequence[Any]) -> list[Any]:
        if not _sliceable(key):
            return self._whole_generate(jobs, probs_of(key))
        return self._process(self._generate, jobs, probs_of(key))

    def run(self, key: Hashable, jobs: Sequence[Any]) -> list[Any]:
        return self._process(self._run, jobs, probs_of(key))

    def encode(self, _length: Hashable, sources: Sequence[list[int]]) -> list[Carried]:
        states = self.model.compute.encode(np.asarray(sources, dtype=np.int32))
        return [tuple(s[i].copy() for s in states) for i in range(len(sources))]

    # ---- short jobs whole, long ones a slice at a time ------------------------------

    def _process(self, kind: _Kind, payloads: Sequence[Any], probs: bool) -> list[Any]:
        """One iteration of a group: new jobs that fit in a slice run whole; longer ones
        start, and every running one advances a slice. Whole answers are computed first
        and running jobs change only once their slice succeeded."""
        new = [i for i, p in enumerate(payloads) if not isinstance(p, Progress | RunProgress)]
        if kind.clock.target > 0:  # new jobs run whole in a call of their own
            rows = sum(_rows_of(payloads[i]) for i in new)
            allowed = kind.clock.steps(rows, self._contended())
            short = [i for i in new if kind.steps(payloads[i]) <= allowed]
        else:
            short = new
        results: list[Any] = [None] * len(payloads)
        if short:
            answers = kind.whole([payloads[i] for i in short], probs)
            for i, answer in zip(short, answers, strict=True):
                results[i] = answer
        if short and len(new) < len(payloads) and kind not in self._gave_way:
            # new short requests first: this iteration answers them alone, and the
            # running decodes (and new long ones) go on in the next; never twice in a
            # row, so a stream of short requests cannot starve a long one
            self._gave_way.add(kind)
            for i, p in enumerate(payloads):
                if results[i] is None:
                    results[i] = Continue(p, _rows_of(p))
            return results
        self._gave_way.discard(kind)
        picked = set(short)
        running = {
            i: p if i not in new else kind.begin(p, probs)
            for i, p in enumerate(payloads)
            if i not in picked
        }
        self._advance(list(running.values()), probs, kind.clock)
        for i, progress in running.items():
            done = not progress.lanes
            results[i] = kind.answer(progress) if done else Continue(progress, progress.running)
        return results

    def _advance(self, running: list[Running], probs: bool, clock: SliceClock) -> None:
        if not running:
            return
        compute, contended = self.model.compute, self._contended
        decodes = [p for p in running if isinstance(p, Progress)]
        runs = [p for p in running if isinstance(p, RunProgress)]
        ran = 0
        if decodes:
            end = self.model.spec.manifest.end_id
            ran += advance(compute, decodes, probs, clock, end, contended)
        if runs:
            ran += advance_runs(compute, runs, probs, clock, contended)
        if self._steps is not None:
            self._steps.inc(ran)

    def _count(self, rows: Sequence[RowDecoded], width: int = 1) -> None:
        """Decoder steps run: one per output token of each row (x width for beams)."""
        if self._steps is not None:
            self._steps.inc(width * sum(len(row.outputs) for row in rows))

    # ---- whole ------------------------------------------------------------------------

    def _whole_predict(self, jobs: Sequence[PredictJob], probs: bool) -> list[Any]:
        sequences = [s for job in jobs for s in job.sequences]
        limits = [job.max_steps for job in jobs for _ in job.sequences]
        decoding = [d for job in jobs for d in job.decoding]
        wanted = [n for job in jobs for n in (job.wanted or [1] * len(job.sequences))]
        rows = decode(self.model.compute, sequences, limits, probs, decoding, wanted)
        self._count(rows, jobs[0].decoding[0].beam_width)
        return _split(rows, [len(job.sequences) for job in jobs])

    def _whole_step_predict(self, jobs: Sequence[PredictJob], probs: bool) -> list[Any]:
        sequences = [s for job in jobs for s in job.sequences]
        zeros = self.model.spec.zero_states(len(sequences))
        rows = run_rows(self.model.compute, zeros, sequences, probs)
        self._count(rows)
        return _split(rows, [len(job.sequences) for job in jobs])

    def _states(
        self, states: Sequence[Carried], beam: bool = False, sliced: bool = False
    ) -> States:
        """Rows' states stacked. With a Transformer decoder's key/value cache
        (Compute.kv_states), generate and run give back states extended by the caches:
        a job run in slices starts from them (its final states keep one shape), and beam
        search from prefix states."""
        stacked = _stack(states)
        compute = self.model.compute
        if beam:
            return compute.prefix_states(stacked)
        return compute.kv_states(stacked) if sliced else stacked

    def _whole_generate(self, jobs: Sequence[GenerateJob], probs: bool) -> list[Any]:
        beam = jobs[0].decoding.strategy == "beam"
        states = self._states([job.states for job in jobs], beam)
        tokens = np.asarray([job.token for job in jobs], dtype=np.int32)
        limits = [job.max_steps for job in jobs]
        decoding = [job.decoding for job in jobs]
        wanted = [job.wanted for job in jobs]
        rows = generate_rows(self.model.compute, tokens, states, limits, probs, decoding, wanted)
        self._count(rows, decoding[0].beam_width)
        return list(rows)

    def _whole_run(self, jobs: Sequence[RunJob], probs: bool) -> list[Any]:
        states = self._states([job.states for job in jobs])
        rows = run_rows(self.model.compute, states, [job.tokens for job in jobs], probs)
        self._count(rows)
        return list(rows)

    # ---- sliced -----------------------------------------------------------------------

    @property
    def _width(self) -> int:
        return self.model.spec.manifest.output_cardinality

    def _begin_predict(self, job: PredictJob, probs: bool) -> Progress:
        limits = [job.max_steps] * len(job.sequences)
        start_id = self.model.spec.manifest.start_id or 0
        compute = self.model.compute
        return start_decode(
            compute, job.sequences, limits, probs, self._width, job.decoding, start_id
        )

    def _begin_step_predict(self, job: PredictJob, probs: bool) -> RunProgress:
        zeros = self.model.spec.zero_states(len(job.sequences))
        return start_run(zeros, job.sequences, probs, self._width)

    def _begin_generate(self, job: GenerateJob, probs: bool) -> Progress:
        tokens = np.asarray([job.token], np.int32)
        states = self._states([job.states], sliced=True)
        return start(tokens, states, [job.max_steps], probs, self._width, [job.decoding])

    def _begin_run(self, job: RunJob, probs: bool) -> RunProgress:
        states = self._states([job.states], sliced=True)
        return start_run(states, [job.tokens], probs, self._width)


def _split(rows: list[RowDecoded], sizes: list[int]) -> list[Any]:
    """Consecutive rows back to the jobs they came from."""
    result: list[Any] = []
    first = 0
    for size in sizes:
        result.append(rows[first : first + size])
        first += size
    return result


def _rows_of(payload: Any) -> int:
    if isinstance(payload, Progress | RunProgress):
        return payload.running
    return len(payload.sequences) if isinstance(payload, PredictJob) else 1


def _max_steps(job: PredictJob | GenerateJob) -> int:
    return job.max_steps


def _longest(job: PredictJob) -> int:
    return max(len(s) for s in job.sequences)


def _tokens(job: RunJob) -> int:
    return len(job.tokens)


def _rows(progress: Running) -> list[RowDecoded]:
    return progress.results()


def _first_row(progress: Running) -> RowDecoded:
    return progress.results()[0]
