"""Loaded model graphs behind the `Compute` protocol, compiled into `tf.function`s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from service.inference.base import Decoded, ModelSpec, States
from service.inference.formats.base import Graph
from service.inference.layout import Layout
from service.inference.loop import LoopCompute
from service.inference.manifest import Side


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Set TF thread pools; only effective before TF runs its first op (0 = TF default)."""
    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # already initialised (e.g. a second app in one process)
        pass


class KerasCompute(LoopCompute):
    """Encoder/decoder (or step) models in traced `tf.function`s.

    Each operation is one graph call per batch: the whole greedy decode (encoder and
    every decoder step in a `tf.while_loop`, stopping early once every row is done),
    the whole teacher-forced run, or one step. Input signatures leave batch and length
    open, so varying requests never retrace; `probs` (whether probabilities are
    returned) is the only Python-level switch, so each function traces at most twice.
    """

    def __init__(self, spec: ModelSpec, layout: Layout, encoder: Graph | None, decoder: Graph):
        manifest = spec.manifest
        self.spec = spec
        self.layout = layout
        decoder.single_step()
        self._encoder = encoder
        self._decoder = decoder
        self._logits = manifest.decoder_output == "logits"
        self._out_card = manifest.output_cardinality
        self._end = manifest.end_id
        self._start = manifest.start_id
        tokens = tf.TensorSpec([None], tf.int32)
        matrix = tf.TensorSpec([None, None], tf.int32)
        states = [tf.TensorSpec([None, *s], tf.float32) for s in spec.state_shapes]
        if spec.memory_shape is not None:
            states.append(tf.TensorSpec([None, *spec.memory_shape], tf.float32))
        self._functions: list[Any] = []
        self._step_fn = self._compile(self._step_graph, [tokens, states])
        self._generate_fns = {
            probs: self._compile(self._generate_for(probs), [tokens, states, tokens])
            for probs in (False, True)
        }
        self._run_fns = {
            probs: self._compile(self._run_for(probs), [matrix, states]) for probs in (False, True)
        }
        if encoder is not None:
            self._encode_fn = self._compile(self._encode_graph, [matrix])
            self._decode_fns = {
                probs: self._compile(self._decode_for(probs), [matrix, tokens])
                for probs in (False, True)
            }

    # one graph per value of `probs`: closures keep it out of the traced signature
    def _generate_for(self, probs: bool) -> Any:
        def graph(tokens: tf.Tensor, states: list[tf.Tensor], limits: tf.Tensor) -> Any:
            return self._generate_graph(tokens, states, limits, probs)

        return graph

    def _decode_for(self, probs: bool) -> Any:
        def graph(sources: tf.Tensor, limits: tf.Tensor) -> Any:
            return self._decode_graph(sources, limits, probs)

        return graph

    def _run_for(self, probs: bool) -> Any:
        def graph(tokens: tf.Tensor, states: list[tf.Tensor]) -> Any:
            return self._run_graph(tokens, states, probs)

        return graph

    def _compile(self, fn: Any, signature: list[Any]) -> Any:
        """Trace now (a warm-up at load time) and return the concrete function: calling
        it directly skips tf.function's per-call argument matching."""
        compiled = tf.function(fn, input_signature=signature)
        self._functions.append(compiled)
        return compiled.get_concrete_function()

    def warm_up(self) -> None:
        """Run every graph once at batch sizes 1 and 2. The first run of a graph is
        optimised by grappler (~100 ms here) and the first multi-row run costs ~25 ms
        more; doing both at load keeps those stalls out of the first requests."""
        length = self.spec.manifest.source.length or 1
        for batch in (1, 2):
            tokens = np.zeros(batch, np.int32)
            limits = np.ones(batch, np.int32)
            sources = np.zeros((batch, length), np.int32)
            if self._encoder is not None:
                states = self.encode(sources)
            else:
                states = self.spec.zero_states(batch)
            self.step(tokens, states)
            for probs in (False, True):
                self.generate(tokens, states, limits, probs)
                self.run(tokens[:, None], states, probs)
                if self._encoder is not None:
                    self.decode(sources, limits, probs)

    def trace_count(self) -> int:
        """Total traces so far: must not grow with new batch sizes or lengths."""
        return sum(int(f.experimental_get_tracing_count()) for f in self._functions)

    # ---- graph pieces -------------------------------------------------------------

    @staticmethod
    def _tokens(tokens: tf.Tensor, side: Side, dtype: str) -> tf.Tensor:
        if side.encoding == "one_hot":
            return tf.one_hot(tokens, side.size, dtype=dtype)
        return tf.cast(tokens, dtype)

    def _encode_graph(self, sources: tf.Tensor) -> list[tf.Tensor]:
        """Sources -> [*states, memory?] (the compute-level state list)."""
        assert self._encoder is not None
        source = self._encoder.inputs[0]
        x = self._tokens(sources, self.spec.manifest.source, source.dtype)
        outputs = self._encoder([x])
        layout = self.layout
        carried = [tf.cast(outputs[i], tf.float32) for i in layout.encoder_states]
        if layout.encoder_memory is not None:
            carried.append(tf.cast(outputs[layout.encoder_memory], tf.float32))
        return carried

    def _step_graph(self, tokens: tf.Tensor, carried: list[tf.Tensor]) -> list[tf.Tensor]:
        """One decoder step: [probabilities, *new states, memory?]."""
        layout, specs = self.layout, self._decoder.inputs
        inputs: list[Any] = [None] * len(specs)
        token = layout.decoder_token
        inputs[token] = self._tokens(
            tokens[:, None], self.spec.manifest.token_side, specs[token].dtype
        )
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

    def _rows(self, mask: tf.Tensor, state: tf.Tensor) -> tf.Tensor:
        return tf.reshape(mask, [-1] + [1] * (state.shape.rank - 1))

    def _batch_major(
        self,
        chosen_ta: tf.TensorArray,
        probs_ta: tf.TensorArray | None,
        steps: tf.Tensor,
        batch: tf.Tensor,
    ) -> dict[str, Any]:
        """Step-major TensorArrays -> {"tokens": (batch, steps), "probs": (batch, steps, V)}."""
        result = {"tokens": tf.transpose(tf.reshape(chosen_ta.stack(), [steps, batch]))}
        if probs_ta is not None:
            result["probs"] = tf.transpose(
                tf.reshape(probs_ta.stack(), [steps, batch, self._out_card]), [1, 0, 2]
            )
        return result

    def _probs_array(self) -> tf.TensorArray:
        return tf.TensorArray(
            tf.float32,
            size=0,
            dynamic_size=True,
            element_shape=tf.TensorShape([None, self._out_card]),
        )

    def _generate_graph(
        self, tokens: tf.Tensor, states: list[tf.Tensor], limits: tf.Tensor, probs: bool
    ) -> dict[str, Any]:
        batch = tf.shape(tokens)[0]
        steps = tf.reduce_max(limits)
        chosen_ta = tf.TensorArray(
            tf.int32, size=0, dynamic_size=True, element_shape=tf.TensorShape([None])
        )
        probs_ta = self._probs_array()

        def cond(
            t: tf.Tensor,
            _tok: tf.Tensor,
            _s: list[tf.Tensor],
            _f: list[tf.Tensor],
            done: tf.Tensor,
            *_: Any,
        ) -> tf.Tensor:
            return tf.logical_and(t < steps, tf.logical_not(tf.reduce_all(done)))

        def body(
            t: tf.Tensor,
            tok: tf.Tensor,
            current: list[tf.Tensor],
            final: list[tf.Tensor],
            done: tf.Tensor,
            lengths: tf.Tensor,
            chosen_ta: tf.TensorArray,
            probs_ta: tf.TensorArray,
        ) -> tuple[Any, ...]:
            result = self._step_graph(tok, current)
            p, new = result[0], result[1:]
            chosen = tf.argmax(p, axis=-1, output_type=tf.int32)
            active = tf.logical_not(done)
            final = [tf.where(self._rows(active, n), n, f) for n, f in zip(new, final, strict=True)]
            lengths += tf.cast(active, tf.int32)
            chosen_ta = chosen_ta.write(t, chosen)
            if probs:
                probs_ta = probs_ta.write(t, p)
            t += 1
            done = tf.logical_or(done, t >= limits)
            if self._end is not None:
                done = tf.logical_or(done, tf.equal(chosen, self._end))
            return t, chosen, new, final, done, lengths, chosen_ta, probs_ta

        loop = tf.while_loop(
            cond,
            body,
            [
                tf.constant(0),
                tokens,
                list(states),
                list(states),
                tf.zeros([batch], tf.bool),
                tf.zeros([batch], tf.int32),
                chosen_ta,
                probs_ta,
            ],
        )
        t, final, lengths, chosen_ta, probs_ta = loop[0], loop[3], loop[5], loop[6], loop[7]
        result = self._batch_major(chosen_ta, probs_ta if probs else None, t, batch)
        result.update(lengths=lengths, states=final)
        return result

    def _decode_graph(self, sources: tf.Tensor, limits: tf.Tensor, probs: bool) -> dict[str, Any]:
        assert self._start is not None
        states = self._encode_graph(sources)
        tokens = tf.fill([tf.shape(sources)[0]], tf.constant(self._start, tf.int32))
        result = self._generate_graph(tokens, states, limits, probs)
        del result["states"]  # predict does not need them: fewer outputs to copy out
        return result

    def _run_graph(self, tokens: tf.Tensor, states: list[tf.Tensor], probs: bool) -> dict[str, Any]:
        batch, steps = tf.shape(tokens)[0], tf.shape(tokens)[1]
        chosen_ta = tf.TensorArray(tf.int32, size=steps, element_shape=tf.TensorShape([None]))
        probs_ta = self._probs_array()

        def body(
            t: tf.Tensor,
            current: list[tf.Tensor],
            chosen_ta: tf.TensorArray,
            probs_ta: tf.TensorArray,
        ) -> tuple[Any, ...]:
            result = self._step_graph(tokens[:, t], current)
            chosen_ta = chosen_ta.write(t, tf.argmax(result[0], axis=-1, output_type=tf.int32))
            if probs:
                probs_ta = probs_ta.write(t, result[0])
            return t + 1, result[1:], chosen_ta, probs_ta

        _, final, chosen_ta, probs_ta = tf.while_loop(
            lambda t, *_: t < steps, body, [tf.constant(0), list(states), chosen_ta, probs_ta]
        )
        result = self._batch_major(chosen_ta, probs_ta if probs else None, steps, batch)
        result["states"] = final
        return result

    # ---- numpy API (Compute) -------------------------------------------------------

    @staticmethod
    def _decoded(result: dict[str, Any], batch: int, steps: int | None = None) -> Decoded:
        tokens = result["tokens"].numpy()
        lengths = (
            result["lengths"].numpy() if "lengths" in result else np.full(batch, steps, np.int32)
        )
        probs = result["probs"].numpy() if "probs" in result else None
        return Decoded(tokens, lengths, probs, [s.numpy() for s in result.get("states", ())])

    @staticmethod
    def _states(states: Sequence[np.ndarray]) -> list[tf.Tensor]:
        return [tf.constant(s, tf.float32) for s in states]

    def encode(self, sources: np.ndarray) -> States:
        return [t.numpy() for t in self._encode_fn(tf.constant(sources, tf.int32))]

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        outputs = self._step_fn(tf.constant(tokens, tf.int32), self._states(states))
        return outputs[0].numpy(), [t.numpy() for t in outputs[1:]]

    def generate(
        self, tokens: np.ndarray, states: Sequence[np.ndarray], limits: np.ndarray, probs: bool
    ) -> Decoded:
        result = self._generate_fns[probs](
            tf.constant(tokens, tf.int32), self._states(states), tf.constant(limits, tf.int32)
        )
        return self._decoded(result, len(tokens))

    def decode(self, sources: np.ndarray, limits: np.ndarray, probs: bool) -> Decoded:
        result = self._decode_fns[probs](
            tf.constant(sources, tf.int32), tf.constant(limits, tf.int32)
        )
        return self._decoded(result, len(sources))

    def run(self, tokens: np.ndarray, states: Sequence[np.ndarray], probs: bool) -> Decoded:
        result = self._run_fns[probs](tf.constant(tokens, tf.int32), self._states(states))
        return self._decoded(result, tokens.shape[0], tokens.shape[1])
