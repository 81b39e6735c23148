"""Loaded model graphs behind the `Compute` protocol, run as compiled functions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.inference.compiled import tensors as t
from service.inference.compiled.functions import Functions, named, recipes
from service.inference.compiled.model_graphs import ModelGraphs
from service.inference.model.formats.graph import Graph
from service.inference.model.interface import Beams, Decoded, ModelSpec, Sampling, States
from service.inference.model.layout import Layout


class KerasCompute:
    """Encoder/decoder (or step) models as compiled functions (a `Compute`).

    Each operation is one graph call per batch: the whole decode (encoder and every
    decoder step in a `tf.while_loop`, stopping early once every row is done) greedy,
    sampled or by beam search, the whole teacher-forced run, or one step. A graph is
    traced the first time it is needed unless the warm-up (warmup.py) did it before;
    "step" and "encode", which every other graph calls, are traced here.
    """

    def __init__(self, spec: ModelSpec, layout: Layout, encoder: Graph | None, decoder: Graph):
        decoder.single_step()
        self.spec = spec
        self.layout = layout
        self.seq2seq = encoder is not None
        self._functions = Functions(f"{spec.name} v{spec.version}")
        graphs = ModelGraphs(spec, layout, encoder, decoder, self._functions)
        self._functions.define(recipes(graphs, spec, self.seq2seq))
        for name in ("step", "encode") if self.seq2seq else ("step",):
            self._functions.compile(name)

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

    # ---- Compute ------------------------------------------------------------------

    def encode(self, sources: np.ndarray) -> States:
        return [x.numpy() for x in self._functions("encode")(t.ints(sources))]

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
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
        args = [t.ints(tokens), t.states(states), t.ints(limits)]
        if sampling is None:
            result = self._functions(named("generate", probs))(*args)
        else:
            result = self._functions(named("sample", probs))(*args, t.params(sampling))
        return t.decoded(result, len(tokens))

    def decode(
        self,
        sources: np.ndarray,
        limits: np.ndarray,
        probs: bool,
        sampling: Sampling | None = None,
    ) -> Decoded:
        args = [t.ints(sources), t.ints(limits)]
        if sampling is None:
            result = self._functions(named("decode", probs))(*args)
        else:
            result = self._functions(named("sample_decode", probs))(*args, t.params(sampling))
        return t.decoded(result, len(sources))

    def beam(
        self,
        tokens: np.ndarray,
        states: Sequence[np.ndarray],
        limits: np.ndarray,
        width: int,
        alpha: np.ndarray,
    ) -> Beams:
        result = self._functions("beam")(
            t.ints(tokens), t.states(states), t.ints(limits), t.ints(width), t.floats(alpha)
        )
        return t.beams(result)

    def beam_decode(
        self, sources: np.ndarray, limits: np.ndarray, width: int, alpha: np.ndarray
    ) -> Beams:
        result = self._functions("beam_decode")(
            t.ints(sources), t.ints(limits), t.ints(width), t.floats(alpha)
        )
        return t.beams(result)

    def run(self, tokens: np.ndarray, states: Sequence[np.ndarray], probs: bool) -> Decoded:
        result = self._functions(named("run", probs))(t.ints(tokens), t.states(states))
        return t.decoded(result, tokens.shape[0], tokens.shape[1])
