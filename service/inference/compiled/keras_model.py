"""Loaded model graphs behind the `Compute` protocol, run as compiled functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from service.inference.compiled import buckets as pad
from service.inference.compiled import tensors as t
from service.inference.compiled import xla
from service.inference.compiled.functions import CALLEES, Functions, kv_recipes, named, recipes
from service.inference.compiled.model_graphs import ModelGraphs
from service.inference.compiled.xla_calls import XlaCalls
from service.inference.compiled.xla_recipes import xla_recipes
from service.inference.model.formats.graph import Graph
from service.inference.model.interface import (
    Beams,
    Compilation,
    Decoded,
    ModelSpec,
    Sampling,
    States,
)
from service.inference.model.layout import Layout


def _params(sampling: Sampling, rows: int) -> list[np.ndarray]:
    """In the order the sampling graphs take them (functions.recipes), padded."""
    s = pad.sampling(sampling, rows)
    return [
        np.asarray(s.temperature, np.float32),
        np.asarray(s.top_k, np.int32),
        np.asarray(s.top_p, np.float32),
        np.asarray(s.seeds, np.uint64),
        np.asarray(s.offsets, np.int32),
    ]


class KerasCompute:
    """Encoder/decoder (or step) models as compiled functions (a `Compute`).

    Each operation is one graph call per batch: the whole decode (encoder and every
    decoder step in a `tf.while_loop`, stopping early once every row is done) greedy,
    sampled or by beam search, the whole teacher-forced run, or one step. A graph is
    traced the first time it is needed unless the warm-up (warmup.py) did it before;
    "step" and "encode", which every other graph calls, are traced here.

    With SERVICE_XLA on or auto, a call whose shape bucket (buckets.py) has an XLA program
    compiled runs that, padded; any other is answered by the TF graph and its bucket
    queued for compiling (xla.py).
    """

    def __init__(
        self,
        spec: ModelSpec,
        layout: Layout,
        encoder: Graph | None,
        decoder: Graph,
        kv_cache: bool = True,
    ):
        decoder.single_step()
        self.spec = spec
        self.layout = layout
        self.seq2seq = encoder is not None
        label = f"{spec.name} v{spec.version}"
        self._functions = Functions(label)
        graphs = ModelGraphs(spec, layout, encoder, decoder, self._functions, kv_cache)
        self._functions.define(recipes(graphs, spec, self.seq2seq))
        for name in CALLEES:
            if name in self._functions.names():
                self._functions.compile(name)
        if graphs.cached is not None:
            graphs.verify_cache()
        self._cache = graphs.cached is not None, graphs.cache_note
        self._kept: tuple[int, int] | None = None  # extended states: count, memory's index
        if graphs.cached is not None and graphs.keep:
            self._functions.add(kv_recipes(graphs))
            self._kept = len(graphs.cached.shapes()), 2 + graphs.cached.chain.caches
        self.xla: xla.Xla | None = None
        if xla.mode() != "off":
            self.xla = xla.Xla(label, xla_recipes(graphs, spec, self.seq2seq))
        self._calls = XlaCalls(self.xla)

    def kv_cache(self) -> tuple[bool, str]:
        """A Transformer decoder's key/value cache (kv_cache.py): used, or why not."""
        return self._cache

    def extended(self, states: Sequence[np.ndarray]) -> bool:
        """Whether `states` are extended by the key/value caches (kv_states)."""
        return self._kept is not None and len(states) == self._kept[0]

    def kv_states(self, states: Sequence[np.ndarray]) -> States:
        """Prefix states extended by the decoder's key/value caches, built in one pass
        ("cache_build"): generate and run take them, and give them back, instead of
        rebuilding the caches in every call. Without a cache (or with keeping turned off,
        cached_steps.configure), or extended already: as they are."""
        if self._kept is None or self.extended(states):
            return list(states)
        return [x.numpy() for x in self._functions("cache_build")(t.states(states))]

    def prefix_states(self, states: Sequence[np.ndarray]) -> States:
        """kv_states undone: the prefix states alone."""
        if self._kept is None or not self.extended(states):
            return list(states)
        return [states[0], states[1], states[self._kept[1]]]

    def graphs(self) -> list[str]:
        """Every graph this model can run, by name."""
        return self._functions.names()

    def compiled(self, name: str) -> bool:
        return self._functions.compiled(name)

    def compile(self, name: str) -> bool:
        """Trace graph `name` now unless it is (or another thread is tracing it: then
        wait for that); True if this call traced it."""
        return self._functions.compile(name)

    def trace_count(self) -> int:
        """Total traces so far: must not grow with new batch sizes or lengths."""
        return self._functions.trace_count()

    def compilation(self) -> Compilation | None:
        """The XLA buckets, or None while the TF graphs serve this model."""
        return self._calls.compilation()

    def graphs_only(self) -> AbstractContextManager[None]:
        """This thread's calls run the TF graphs (xla_calls.py)."""
        return self._calls.graphs_only()

    # ---- Compute ------------------------------------------------------------------

    def encode(self, sources: np.ndarray) -> States:
        n = len(sources)
        if (b := self._calls.rows(n)) is not None:
            result = self._calls.result("encode", [pad.rows(np.asarray(sources, np.int32), b)])
            if result is not None:
                return [x.numpy()[:n] for x in result]
        return [x.numpy() for x in self._functions("encode")(t.ints(sources))]

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        n = len(tokens)
        if (b := self._calls.rows(n)) is not None:
            args = [pad.rows(np.asarray(tokens, np.int32), b), pad.states(states, b)]
            result = self._calls.result("step", args)
            if result is not None:
                return result[0].numpy()[:n], [x.numpy()[:n] for x in result[1:]]
        outputs = self._functions("step")(t.ints(tokens), t.states(states))
        return outputs[0].numpy(), [x.numpy() for x in outputs[1:]]

    def generate(
        self,
        tokens: np.ndarray,
        states: Sequence[np.ndarray],
        limits: np.ndarray,
        probs: bool,
        sampling: Sampling | None = None,
    ) -> Decoded:
        kind = "generate" if sampling is None else "sample"
        name = named(f"{kind}_kv" if self.extended(states) else kind, probs)
        ints = np.asarray(tokens, np.int32)
        return self._decoded(
            name,
            limits,
            sampling,
            lambda b: [pad.rows(ints, b), pad.states(states, b), pad.limits(limits, b)],
            [t.ints(tokens), t.states(states), t.ints(limits)],
        )

    def decode(
        self,
        sources: np.ndarray,
        limits: np.ndarray,
        probs: bool,
        sampling: Sampling | None = None,
    ) -> Decoded:
        name = named("decode" if sampling is None else "sample_decode", probs)
        ints = np.asarray(sources, np.int32)
        return self._decoded(
            name,
            limits,
            sampling,
            lambda b: [pad.rows(ints, b), pad.limits(limits, b)],
            [t.ints(sources), t.ints(limits)],
        )

    def _decoded(
        self,
        name: str,
        limits: np.ndarray,
        sampling: Sampling | None,
        padded: Callable[[int], list[Any]],
        inputs: list[Any],
    ) -> Decoded:
        """Greedy or sampled loop `name`: the XLA program of the batch's bucket (inputs
        `padded(b)` to b rows, the horizon, the sampling parameters), else the TF graph."""
        n = len(limits)
        b, h = self._calls.rows(n), XlaCalls.horizon(int(np.max(limits, initial=0)))
        if b is not None and h is not None:
            args = [*padded(b), pad.carrier(h)]
            if sampling is not None:
                args.append(_params(sampling, b))
            result = self._calls.result(name, args)
            if result is not None:
                return pad.cut_decoded(t.decoded(result, b), n, int(result["steps_run"]))
        if sampling is not None:
            inputs = [*inputs, t.params(sampling)]
        return t.decoded(self._functions(name)(*inputs), n)

    def beam(
        self,
        tokens: np.ndarray,
        states: Sequence[np.ndarray],
        limits: np.ndarray,
        width: int,
        alpha: np.ndarray,
    ) -> Beams:
        ints = np.asarray(tokens, np.int32)
        return self._beams(
            "beam",
            limits,
            width,
            alpha,
            lambda b: [pad.rows(ints, b), pad.states(states, b), pad.limits(limits, b)],
            [t.ints(tokens), t.states(states), t.ints(limits)],
        )

    def beam_decode(
        self, sources: np.ndarray, limits: np.ndarray, width: int, alpha: np.ndarray
    ) -> Beams:
        ints = np.asarray(sources, np.int32)
        return self._beams(
            "beam_decode",
            limits,
            width,
            alpha,
            lambda b: [pad.rows(ints, b), pad.limits(limits, b)],
            [t.ints(sources), t.ints(limits)],
        )

    def _beams(
        self,
        name: str,
        limits: np.ndarray,
        width: int,
        alpha: np.ndarray,
        padded: Callable[[int], list[Any]],
        inputs: list[Any],
    ) -> Beams:
        """Beam search `name`: the XLA program of the batch's bucket (inputs `padded(b)` to
        b rows, the width and horizon carriers, alpha), else the TF graph."""
        n = len(limits)
        b, h = self._calls.rows(n), XlaCalls.horizon(int(np.max(limits, initial=0)))
        if b is not None and h is not None:
            rows = pad.rows(np.asarray(alpha, np.float32), b)
            args = [*padded(b), pad.carrier(width), rows, pad.carrier(h)]
            result = self._calls.result(name, args)
            if result is not None:
                return pad.cut_beams(t.beams(result), n)
        return t.beams(self._functions(name)(*inputs, t.ints(width), t.floats(alpha)))

    def run(self, tokens: np.ndarray, states: Sequence[np.ndarray], probs: bool) -> Decoded:
        n, steps = tokens.shape
        name = named("run_kv" if self.extended(states) else "run", probs)
        b, h = self._calls.rows(n), XlaCalls.horizon(steps)
        if b is not None and h is not None:
            padded = pad.columns(pad.rows(np.asarray(tokens, np.int32), b), h)
            args = [padded, pad.states(states, b), np.asarray(steps, np.int32)]
            result = self._calls.result(name, args)
            if result is not None:
                return pad.cut_decoded(t.decoded(result, b, steps), n, steps)
        result = self._functions(name)(t.ints(tokens), t.states(states))
        return t.decoded(result, n, steps)
