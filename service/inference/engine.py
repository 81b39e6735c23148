"""Per-model async entry points: every call goes through a batcher to the compute thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import NotReady
from service.inference.base import GREEDY, Decoding, LoadedModel, States
from service.inference.batcher import Batcher, Continue
from service.inference.decoding import RowDecoded, decode, generate_rows
from service.inference.slicing.clock import SliceClock
from service.inference.slicing.decode import Progress, advance, start, start_decode
from service.inference.slicing.run import RunProgress, advance_runs, start_run
from service.metrics import Metrics

log = logging.getLogger("service")


@dataclass(frozen=True)
class BatchSettings:
    max_rows: int = 256
    max_delay: float = 0.0
    max_queue_rows: int = 4096
    slice_seconds: float = 0.002  # compute per decoding slice; 0: a decode runs whole


@dataclass(frozen=True)
class PredictJob:
    sequences: list[list[int]]
    max_steps: int
    decoding: list[Decoding]  # one per sequence, all in one group
    wanted: list[int] | None = None  # beam: hypotheses per sequence


def _probs(key: Hashable) -> bool:
    return bool(key[0] if isinstance(key, tuple) else key)


def _sliced(key: Hashable) -> bool:
    """Greedy and sampled decodes run in slices; beam search runs whole."""
    return isinstance(key, tuple) and key[1][0] != "beam"


def _only_row(progress: Progress | RunProgress) -> RowDecoded:
    return progress.results()[0]


def _stack(states: Sequence[tuple[np.ndarray, ...]]) -> States:
    return [np.stack(column) for column in zip(*states, strict=True)]


class ModelEngine:
    def __init__(
        self,
        model: LoadedModel,
        executor: Executor,
        settings: BatchSettings,
        metrics: Metrics | None = None,
    ):
        self.model = model
        name = f"{model.spec.name}/{model.spec.version}"
        self._steps = metrics.decoder(model.spec.name) if metrics is not None else None
        self._decode_clock = SliceClock(settings.slice_seconds)
        self._run_clock = SliceClock(settings.slice_seconds)
        self._executor = executor

        def batcher(kind: str, process: Any) -> Batcher:
            return Batcher(
                f"{name} {kind}",
                process,
                executor,
                settings.max_rows,
                settings.max_delay,
                settings.max_queue_rows,
                metrics.batcher(model.spec.name, kind) if metrics is not None else None,
            )

        self._predict = batcher("predict", self._process_predict)
        self._run = batcher("step", self._process_run)
        self._generate = batcher("generate", self._process_generate)
        self._encode = batcher("encode", self._process_encode)
        self.batchers = (self._predict, self._run, self._generate, self._encode)

    def _contended(self) -> bool:
        """Other work waits for the compute thread (read there, between slices)."""
        waiting = getattr(self._executor, "waiting", 0)
        return waiting > 0 or any(b.queued_rows for b in self.batchers)

    async def drain(self, timeout: float) -> bool:
        """Let queued and running batches finish; False if `timeout` passes first."""
        deadline = time.monotonic() + timeout
        drained = True
        for b in self.batchers:
            drained = await b.drain(max(0.0, deadline - time.monotonic())) and drained
        return drained

    async def close(self, timeout: float = 0.0) -> None:
        """After up to `timeout` seconds of draining; whatever is still queued then
        fails with a 503."""
        if timeout > 0 and not await self.drain(timeout):
            name = f"{self.model.spec.name}/{self.model.spec.version}"
            log.warning("%s: queued work not finished after %.1f s; failing it", name, timeout)
        for b in self.batchers:
            await b.close()

    # ---- async API --------------------------------------------------------------

    async def predict(self, job: PredictJob, probs: bool) -> list[RowDecoded]:
        """seq2seq: decode each source by its strategy; step model: run each from a
        zero state (greedy only)."""
        key = (probs, job.decoding[0].group)
        result: list[RowDecoded] = await self._predict.submit(key, len(job.sequences), job)
        return result

    def _key(self, states: tuple[np.ndarray, ...], probs: bool, decoding: Decoding) -> Hashable:
        """Rows batch together when their probabilities flag, decoding group and memory
        length agree (an attention memory's time dimension is the source's length)."""
        if self.model.spec.memory_shape is None:
            return probs, decoding.group
        return probs, decoding.group, states[-1].shape

    async def run(
        self, states: tuple[np.ndarray, ...], tokens: list[int], probs: bool
    ) -> RowDecoded:
        """Feed `tokens` from one session's states (and memory, last)."""
        key = self._key(states, probs, GREEDY)
        result: RowDecoded = await self._run.submit(key, 1, (states, tokens))
        return result

    async def generate(
        self,
        states: tuple[np.ndarray, ...],
        token: int,
        max_steps: int,
        probs: bool,
        decoding: Decoding = GREEDY,
        wanted: int = 1,
    ) -> RowDecoded:
        key = self._key(states, probs, decoding)
        payload = (states, token, max_steps, decoding, wanted)
        result: RowDecoded = await self._generate.submit(key, 1, payload)
        return result

    async def encode(self, source: list[int]) -> tuple[np.ndarray, ...]:
        result: tuple[np.ndarray, ...] = await self._encode.submit(len(source), 1, source)
        return result

    # ---- compute thread ---------------------------------------------------------

    def _count_steps(self, rows: list[RowDecoded], width: int = 1) -> None:
        """Decoder steps run: one per output token of each row (x width for beams)."""
        if self._steps is not None:
            self._steps.inc(width * sum(len(row.outputs) for row in rows))

    def _process_predict(self, key: Hashable, jobs: Sequence[Any]) -> list[Any]:
        probs = _probs(key)
        if self.model.spec.manifest.kind == "step":  # greedy only
            return self._slices(jobs, probs, self._start_step_predict, Progress.results)
        if _sliced(key):
            return self._slices(jobs, probs, self._start_predict, Progress.results)
        sequences = [s for job in jobs for s in job.sequences]
        limits = [job.max_steps for job in jobs for _ in job.sequences]
        decoding = [d for job in jobs for d in job.decoding]
        wanted = [n for job in jobs for n in (job.wanted or [1] * len(job.sequences))]
        rows = decode(self.model.compute, sequences, limits, probs, decoding, wanted)
        self._count_steps(rows, jobs[0].decoding[0].beam_width)
        results: list[Any] = []
        begin = 0
        for job in jobs:
            results.append(rows[begin : begin + len(job.sequences)])
            begin += len(job.sequences)
        return results

    def _slices(
        self,
        payloads: Sequence[Any],
        probs: bool,
        begin: Callable[[Any, bool], Progress | RunProgress],
        answer: Callable[[Any], Any],
    ) -> list[Any]:
        """One slice of every job (new jobs start theirs); a job whose rows are all done
        answers, the others continue in the next iteration."""
        started = [
            p if isinstance(p, Progress | RunProgress) else begin(p, probs) for p in payloads
        ]
        compute, contended = self.model.compute, self._contended
        decodes = [p for p in started if isinstance(p, Progress)]
        runs = [p for p in started if isinstance(p, RunProgress)]
        ran = 0
        if decodes:
            end = self.model.spec.manifest.end_id
            ran += advance(compute, decodes, probs, self._decode_clock, end, contended)
        if runs:
            ran += advance_runs(compute, runs, probs, self._run_clock, contended)
        if self._steps is not None:
            self._steps.inc(ran)
        return [Continue(p, p.running) if p.lanes else answer(p) for p in started]

    def _start_predict(self, job: PredictJob, probs: bool) -> Progress:
        manifest = self.model.spec.manifest
        limits = [job.max_steps] * len(job.sequences)
        width, start_id = manifest.output_cardinality, manifest.start_id or 0
        return start_decode(
            self.model.compute, job.sequences, limits, probs, width, job.decoding, start_id
        )

    def _start_step_predict(self, job: PredictJob, probs: bool) -> RunProgress:
        """A step model's predict: each sequence from a zero state."""
        states = self.model.spec.zero_states(len(job.sequences))
        return start_run(states, job.sequences, probs, self.model.spec.manifest.output_cardinality)

    def _start_generate(self, job: tuple[Any, ...], probs: bool) -> Progress:
        states, token, max_steps, decoding, _wanted = job
        tokens = np.asarray([token], np.int32)
        width = self.model.spec.manifest.output_cardinality
        return start(tokens, _stack([states]), [max_steps], probs, width, [decoding])

    def _start_run(self, job: tuple[tuple[np.ndarray, ...], list[int]], probs: bool) -> RunProgress:
        states, tokens = job
        width = self.model.spec.manifest.output_cardinality
        return start_run(_stack([states]), [tokens], probs, width)

    def _process_run(self, key: Hashable, jobs: Sequence[Any]) -> list[Any]:
        return self._slices(jobs, _probs(key), self._start_run, _only_row)

    def _process_generate(self, key: Hashable, jobs: Sequence[Any]) -> list[Any]:
        if _sliced(key):
            return self._slices(jobs, _probs(key), self._start_generate, _only_row)
        states = _stack([job[0] for job in jobs])
        tokens = np.asarray([job[1] for job in jobs], dtype=np.int32)
        limits = [job[2] for job in jobs]
        decoding = [job[3] for job in jobs]
        wanted = [job[4] for job in jobs]
        rows = generate_rows(
            self.model.compute, tokens, states, limits, _probs(key), decoding, wanted
        )
        self._count_steps(rows, decoding[0].beam_width)
        return list(rows)

    def _process_encode(
        self, _length: Hashable, sources: Sequence[list[int]]
    ) -> list[tuple[np.ndarray, ...]]:
        states = self.model.compute.encode(np.asarray(sources, dtype=np.int32))
        return [tuple(s[i].copy() for s in states) for i in range(len(sources))]


class Engines:
    """One ModelEngine per served model version, sharing the compute executor."""

    def __init__(
        self,
        models: Sequence[LoadedModel],
        executor: Executor,
        settings: BatchSettings,
        metrics: Metrics | None = None,
    ):
        self._executor = executor
        self._settings = settings
        self._metrics = metrics
        self._engines: dict[tuple[str, int], ModelEngine] = {}
        for m in models:
            self.add(m)

    def add(self, model: LoadedModel) -> None:
        engine = ModelEngine(model, self._executor, self._settings, self._metrics)
        self._engines[_key(model)] = engine

    def remove(self, model: LoadedModel) -> ModelEngine | None:
        """Forget `model`'s engine and hand it over for draining and closing."""
        engine = self._engines.get(_key(model))
        if engine is None or engine.model is not model:
            return None
        del self._engines[_key(model)]
        return engine

    def get(self, model: LoadedModel) -> ModelEngine:
        engine = self._engines.get(_key(model))
        if engine is None or engine.model is not model:
            # Only reachable if a request held a model across an await while it was
            # unloaded; the dataplane looks engines up in the same tick as the registry.
            raise NotReady(
                f"model '{model.spec.name}' version {model.spec.version} was unloaded "
                "meanwhile; retry",
                headers={"Retry-After": "1"},
            )
        return engine

    def all(self) -> list[ModelEngine]:
        return list(self._engines.values())

    def failures(self) -> dict[str, str]:
        """Batchers whose worker ended unexpectedly: name -> why (empty when healthy)."""
        return {
            b.name: b.failure
            for engine in self._engines.values()
            for b in engine.batchers
            if b.failure is not None
        }

    async def close(self, timeout: float = 0.0) -> None:
        """Every engine, after up to `timeout` seconds in all for queued work to finish."""
        deadline = time.monotonic() + timeout
        for engine in list(self._engines.values()):
            await engine.close(max(0.0, deadline - time.monotonic()))


def _key(model: LoadedModel) -> tuple[str, int]:
    return model.spec.name, model.spec.version
