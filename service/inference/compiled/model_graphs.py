"""What each compiled function computes: the Python that `tf.function` traces.

The loops call the step and the encoder as their own compiled functions (a call op
each, reached through `compiled`) instead of tracing the Keras models again in every
loop: tracing a Keras model is most of a model's load time, and grappler inlines the
calls anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from service.inference.compiled import cached_steps, kv_cache, transformer_step
from service.inference.compiled.cached_steps import CachedSteps
from service.inference.compiled.graphs import beam, loops, sample
from service.inference.model.formats.graph import Graph
from service.inference.model.interface import ModelSpec
from service.inference.model.layout import Layout
from service.inference.model.manifest_parts import Side

Result = dict[str, Any]


def _tokens(tokens: tf.Tensor, side: Side, dtype: str) -> tf.Tensor:
    if side.encoding == "one_hot":
        return tf.one_hot(tokens, side.size, dtype=dtype)
    return tf.cast(tokens, dtype)


class ModelGraphs:
    """One model's graph graphs. `compiled(name)` is the compiled function of that name
    (here "step" and "encode"), traced first if it is not yet."""

    def __init__(
        self,
        spec: ModelSpec,
        layout: Layout,
        encoder: Graph | None,
        decoder: Graph,
        compiled: Callable[[str], Any],
        use_cache: bool = True,
    ):
        manifest = spec.manifest
        self.spec = spec
        self.layout = layout
        self._encoder = encoder
        self._decoder = decoder
        self._compiled = compiled
        self._logits = manifest.decoder_output == "logits"
        self._out_card = manifest.output_cardinality
        self._end = manifest.end_id
        self._start = manifest.start_id
        # Transformer decoders: the key/value cache where the chain allows it
        self.cached: CachedSteps | None = None
        self.cache_note = ""
        if layout.decoder_kind == "transformer" and encoder is not None:
            found = (
                kv_cache.find_chain(getattr(decoder, "model", None))
                if use_cache
                else "turned off (kv_cache=False)"
            )
            if isinstance(found, str):
                self.cache_note = found
            else:  # until verify_cache says otherwise
                self.cached = CachedSteps(found, spec, layout, self._logits, compiled)
        self.keep = cached_steps.keeping()  # generate and run give back the caches

    def _step_call(self, tokens: tf.Tensor, states: list[tf.Tensor]) -> list[tf.Tensor]:
        return list(self._compiled("step")(tokens, states))

    def _encode_call(self, sources: tf.Tensor) -> list[tf.Tensor]:
        return list(self._compiled("encode")(sources))

    def encode(self, sources: tf.Tensor) -> list[tf.Tensor]:
        """Sources -> [*states, memory?] (the compute-level state list)."""
        assert self._encoder is not None
        if self.layout.decoder_kind == "transformer":
            return transformer_step.encode(self._encoder, self.layout, sources)
        source = self._encoder.inputs[0]
        x = _tokens(sources, self.spec.manifest.source, source.dtype)
        outputs = self._encoder([x])
        layout = self.layout
        carried = [tf.cast(outputs[i], tf.float32) for i in layout.encoder_states]
        if layout.encoder_memory is not None:
            carried.append(tf.cast(outputs[layout.encoder_memory], tf.float32))
        return carried

    def step(self, tokens: tf.Tensor, carried: list[tf.Tensor]) -> list[tf.Tensor]:
        """One decoder step: [probabilities, *new states, memory?]."""
        layout, specs = self.layout, self._decoder.inputs
        if layout.decoder_kind == "transformer":
            return transformer_step.step(self._decoder, layout, self._logits, tokens, carried)
        inputs: list[Any] = [None] * len(specs)
        token = layout.decoder_token
        inputs[token] = _tokens(tokens[:, None], self.spec.manifest.token_side, specs[token].dtype)
        for k, i in enumerate(layout.decoder_states):
            inputs[i] = tf.cast(carried[k], specs[i].dtype)
        if layout.decoder_memory is not None:
            inputs[layout.decoder_memory] = tf.cast(carried[-1], specs[layout.decoder_memory].dtype)
        outputs = self._decoder(inputs)
        probs = tf.cast(outputs[layout.decoder_probabilities], tf.float32)
        if probs.shape.rank == 3:
            probs = probs[:, -1, :]
        if self._logits:
            probs = tf.nn.softmax(probs, axis=-1)
        new = [tf.cast(outputs[i], tf.float32) for i in layout.decoder_state_outputs]
        if layout.decoder_memory is not None:
            new.append(carried[-1])
        return [probs, *new]

    def generate(
        self,
        tokens: tf.Tensor,
        states: list[tf.Tensor],
        limits: tf.Tensor,
        probs: bool,
        choose: loops.Choose = loops.argmax,
        horizon: tf.Tensor | None = None,
        fresh: bool = False,
        kept: bool = False,
    ) -> Result:
        """`fresh`: `states` are just encoded (no target token fed yet). With a key/value
        cache the states returned are extended by the caches (cached_steps.py; unless
        `keep` is off), and `kept` says the given `states` are too (else the caches are
        built from them)."""
        step, states = self._stepper(states, fresh, kept)
        result = loops.generate(
            step,
            tokens,
            states,
            limits,
            probs,
            self._out_card,
            self._end,
            choose,
            horizon,
        )
        return result if kept or self.keep else self._uncached(result)

    def _stepper(
        self, states: list[tf.Tensor], fresh: bool = False, kept: bool = False
    ) -> tuple[loops.Step, list[tf.Tensor]]:
        """The step function a loop calls and the states it starts from (with a key/value
        cache: extended by the caches, cached_steps.py, unless they are `kept` already)."""
        if self.cached is None:
            return self._step_call, list(states)
        if kept:
            return self.cached.step_call, list(states)
        return self.cached.stepper(states, fresh)

    def _uncached(self, result: Result) -> Result:
        return result if self.cached is None else self.cached.uncached(result)

    def verify_cache(self) -> None:
        """The cached steps against prefix mode's, once at load (cached_steps.py): a chain
        that does not give the same answers is not used (cache_note says why)."""
        assert self.cached is not None
        note = self.cached.verify(self._encode_call, self._step_call)
        if note:
            self.cached, self.cache_note = None, note

    def sample(
        self,
        tokens: tf.Tensor,
        states: list[tf.Tensor],
        limits: tf.Tensor,
        params: list[tf.Tensor],
        probs: bool,
        horizon: tf.Tensor | None = None,
        fresh: bool = False,
        kept: bool = False,
    ) -> Result:
        temperature, top_k, top_p, seeds, offsets = params

        def choose(p: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
            u = sample.uniform(seeds, offsets + t)
            return sample.choose(p, temperature, top_k, top_p, u)

        return self.generate(tokens, states, limits, probs, choose, horizon, fresh, kept)

    def _start_tokens(self, sources: tf.Tensor) -> tf.Tensor:
        assert self._start is not None
        return tf.fill([tf.shape(sources)[0]], tf.constant(self._start, tf.int32))

    def decode(
        self,
        sources: tf.Tensor,
        limits: tf.Tensor,
        params: list[tf.Tensor] | None = None,
        *,
        probs: bool,
        horizon: tf.Tensor | None = None,
    ) -> Result:
        states = self._encode_call(sources)
        tokens = self._start_tokens(sources)
        if params is None:
            result = self.generate(tokens, states, limits, probs, horizon=horizon, fresh=True)
        else:
            result = self.sample(tokens, states, limits, params, probs, horizon, fresh=True)
        del result["states"]  # predict does not need them: fewer outputs to copy out
        return result

    def beam(
        self,
        tokens: tf.Tensor,
        states: list[tf.Tensor],
        limits: tf.Tensor,
        width: tf.Tensor,
        alpha: tf.Tensor,
        keep_states: bool,
        horizon: tf.Tensor | None = None,
        fresh: bool = False,
    ) -> Result:
        constant = 0 if self.spec.memory_shape is None else 1
        step, states = self._stepper(states, fresh)
        if self.cached is not None:
            constant += self.cached.chain.caches  # the cross-attention caches, after memory
        result = beam.beam_search(
            step,
            tokens,
            states,
            limits,
            width,
            alpha,
            self._end,
            keep_states,
            constant,
            horizon,
        )
        return self._uncached(result)

    def beam_decode(
        self,
        sources: tf.Tensor,
        limits: tf.Tensor,
        width: tf.Tensor,
        alpha: tf.Tensor,
        horizon: tf.Tensor | None = None,
    ) -> Result:
        states = self._encode_call(sources)
        tokens = self._start_tokens(sources)
        return self.beam(tokens, states, limits, width, alpha, False, horizon, fresh=True)

    def run(
        self,
        tokens: tf.Tensor,
        states: list[tf.Tensor],
        probs: bool,
        steps: tf.Tensor | None = None,
        kept: bool = False,
    ) -> Result:
        step, states = self._stepper(states, kept=kept)
        result = loops.run(step, tokens, states, probs, self._out_card, steps)
        return result if kept or self.keep else self._uncached(result)
