"""Per-model async entry points: every call goes through a batcher to the compute thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import NotReady
from service.inference.model.interface import GREEDY, Decoding, LoadedModel
from service.inference.serving.batcher import Batcher
from service.inference.serving.decoding import RowDecoded
from service.inference.serving.executor import LATELY
from service.inference.serving.jobs import GenerateJob, PredictJob, RunJob
from service.inference.serving.operations import Operations
from service.observability.metrics import Metrics, QueueState

__all__ = ["BatchSettings", "Engines", "ModelEngine", "PredictJob"]

log = logging.getLogger("service")


@dataclass(frozen=True)
class BatchSettings:
    max_rows: int = 256
    max_delay: float = 0.0
    max_queue_rows: int = 4096
    slice_seconds: float = 0.002  # compute per decoding slice; 0: a decode runs whole


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
        steps = metrics.decoder(model.spec.name) if metrics is not None else None
        self._executor = executor
        ops = Operations(model, settings.slice_seconds, self._contended, steps)

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

        self._predict = batcher("predict", ops.predict)
        self._run = batcher("step", ops.run)
        self._generate = batcher("generate", ops.generate)
        self._encode = batcher("encode", ops.encode)
        self.batchers = (self._predict, self._run, self._generate, self._encode)
        self.operations = ("predict", "step", "generate", "encode")  # the batchers'

    def _contended(self) -> bool:
        """Others use the compute thread: another batcher sent calls lately, or new
        jobs queue or started lately here (read on the compute thread, between slices)."""
        lately = time.monotonic() - LATELY
        if any(b.queued_rows or b.admitted_at > lately for b in self.batchers):
            return True
        busy_besides = getattr(self._executor, "busy_besides", None)
        return busy_besides is not None and bool(busy_besides(self.batchers))

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
        length agree (an attention memory's time dimension is the source's length), and
        so does their number of states (a Transformer session's may come with its
        key/value caches, Compute.kv_states)."""
        if self.model.spec.memory_shape is None:
            return probs, decoding.group
        return probs, decoding.group, states[-1].shape, len(states)

    async def run(
        self, states: tuple[np.ndarray, ...], tokens: list[int], probs: bool
    ) -> RowDecoded:
        """Feed `tokens` from one session's states (and memory, last)."""
        key = self._key(states, probs, GREEDY)
        result: RowDecoded = await self._run.submit(key, 1, RunJob(states, tokens))
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
        job = GenerateJob(states, token, max_steps, decoding, wanted)
        result: RowDecoded = await self._generate.submit(key, 1, job)
        return result

    async def encode(self, source: list[int]) -> tuple[np.ndarray, ...]:
        result: tuple[np.ndarray, ...] = await self._encode.submit(len(source), 1, source)
        return result


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
                retry_after=1,
            )
        return engine

    def all(self) -> list[ModelEngine]:
        return list(self._engines.values())

    def queues(self) -> list[QueueState]:
        """Every batcher's queue and batches, for the metrics."""
        return [
            QueueState(engine.model.spec.name, op, b.queued_rows, b.stats.batches, b.stats.rows)
            for engine in self._engines.values()
            for op, b in zip(engine.operations, engine.batchers, strict=True)
        ]

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
