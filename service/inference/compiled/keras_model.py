"""Loaded model graphs behind the `Compute` protocol, compiled into `tf.function`s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from service.inference.compiled.graphs import beam, loops, sample
from service.inference.model.formats.base import Graph
from service.inference.model.interface import Beams, Decoded, ModelSpec, Sampling, States
from service.inference.model.layout import Layout
from service.inference.model.manifest import Side
from service.inference.reference.loops import LoopCompute


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Set TF thread pools; only effective before TF runs its first op (0 = TF default)."""
    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # already initialised (e.g. a second app in one process)
        pass


def _bound(fn: Any, **options: Any) -> Any:
    """`fn` with Python-level options fixed: they stay out of the traced signature."""

    def graph(*tensors: Any) -> Any:
        return fn(*tensors, **options)

    return graph


class KerasCompute(LoopCompute):
    """Encoder/decoder (or step) models in traced `tf.function`s.

    Each operation is one graph call per batch: the whole decode (encoder and every
    decoder step in a `tf.while_loop`, stopping early once every row is done) greedy,
    sampled or by beam search, the whole teacher-forced run, or one step. Input
    signatures leave batch, length and beam width open, so varying requests never
    retrace; `probs` (whether probabilities are returned) is the only Python-level
    switch, so each function traces at most twice.
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
        self._functions: list[Any] = []
        self._compile_all(spec, encoder is not None)

    def _compile_all(self, spec: ModelSpec, seq2seq: bool) -> None:
        # closures keep `probs` out of the traced signatures: one graph per value
        tokens = tf.TensorSpec([None], tf.int32)
        matrix = tf.TensorSpec([None, None], tf.int32)
        floats = tf.TensorSpec([None], tf.float32)
        width = tf.TensorSpec([], tf.int32)
        states = [tf.TensorSpec([None, *s], tf.float32) for s in spec.state_shapes]
        if spec.memory_shape is not None:
            states.append(tf.TensorSpec([None, *spec.memory_shape], tf.float32))
        # temperature, top_k, top_p, seeds, offsets
        params = [floats, tokens, floats, tf.TensorSpec([None], tf.uint64), tokens]
        both = (False, True)
        self._step_fn = self._compile(self._step_graph, [tokens, states])
        if seq2seq:
            self._encode_fn = self._compile(self._encode_graph, [matrix])
        self._generate_fns = {
            probs: self._compile(
                _bound(self._generate_graph, probs=probs),
                [tokens, states, tokens],
            )
            for probs in both
        }
        self._sample_fns = {
            probs: self._compile(
                _bound(self._sample_graph, probs=probs),
                [tokens, states, tokens, params],
            )
            for probs in both
        }
        self._beam_fn = self._compile(
            _bound(self._beam_graph, keep_states=True),
            [tokens, states, tokens, width, floats],
        )
        self._run_fns = {
            probs: self._compile(_bound(self._run_graph, probs=probs), [matrix, states])
            for probs in both
        }
        if seq2seq:
            self._decode_fns = {
                probs: self._compile(
                    _bound(self._decode_graph, probs=probs),
                    [matrix, tokens],
                )
                for probs in both
            }
            self._sample_decode_fns = {
                probs: self._compile(
                    _bound(self._decode_graph, probs=probs),
                    [matrix, tokens, params],
                )
                for probs in both
            }
            self._beam_decode_fn = self._compile(
                self._beam_decode_graph, [matrix, tokens, width, floats]
            )

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
            sampling = Sampling(
                np.ones(batch, np.float32),
                np.zeros(batch, np.int32),
                np.ones(batch, np.float32),
                np.zeros(batch, np.uint64),
                np.zeros(batch, np.int32),
            )
            alpha = np.zeros(batch, np.float32)
            if self._encoder is not None:
                states = self.encode(sources)
            else:
                states = self.spec.zero_states(batch)
            self.step(tokens, states)
            self.beam(tokens, states, limits, 2, alpha)
            for probs in (False, True):
                self.generate(tokens, states, limits, probs)
                self.generate(tokens, states, limits, probs, sampling)
                self.run(tokens[:, None], states, probs)
                if self._encoder is not None:
                    self.decode(sources, limits, probs)
                    self.decode(sources, limits, probs, sampling)
            if self._encoder is not None:
                self.beam_decode(sources, limits, 2, alpha)

    def trace_count(self) -> int:
        """Total traces so far: must not grow with new batch sizes or lengths."""
        return sum(int(f.experimental_get_tracing_count()) for f in self._functions)

    # The loops call the step and the encoder as the functions traced above (a call op
    # each) instead of tracing the Keras models again in every loop: tracing a Keras
    # model is most of a model's load time, and grappler inlines the calls anyway.
    def _step_call(self, tokens: tf.Tensor, states: list[tf.Tensor]) -> list[tf.Tensor]:
        return list(self._step_fn(tokens, states))

    def _encode_call(self, sources: tf.Tensor) -> list[tf.Tensor]:
        return list(self._encode_fn(sources))

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

    def _generate_graph(
        self,
        tokens: tf.Tensor,
        states: list[tf.Tensor],
        limits: tf.Tensor,
        probs: bool,
        choose: loops.Choose = loops.argmax,
    ) -> dict[str, Any]:
        return loops.generate(
            self._step_call, tokens, states, limits, probs, self._out_card, self._end, choose
        )

    def _sample_graph(
        self,
        tokens: tf.Tensor,
        states: list[tf.Tensor],
        limits: tf.Tensor,
        params: list[tf.Tensor],
        probs: bool,
    ) -> dict[str, Any]:
        temperature, top_k, top_p, seeds, offsets = params

        def choose(p: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
            u = sample.uniform(seeds, offsets + t)
            return sample.choose(p, temperature, top_k, top_p, u)

        return self._generate_graph(tokens, states, limits, probs, choose)

    def _start_tokens(self, sources: tf.Tensor) -> tf.Tensor:
        assert self._start is not None
        return tf.fill([tf.shape(sources)[0]], tf.constant(self._start, tf.int32))

    def _decode_graph(
        self,
        sources: tf.Tensor,
        limits: tf.Tensor,
        params: list[tf.Tensor] | None = None,
        *,
        probs: bool,
    ) -> dict[str, Any]:
        states = self._encode_call(sources)
        tokens = self._start_tokens(sources)
        if params is None:
            result = self._generate_graph(tokens, states, limits, probs)
        else:
            result = self._sample_graph(tokens, states, limits, params, probs=probs)
        del result["states"]  # predict does not need them: fewer outputs to copy out
        return result

    def _beam_graph(
        self,
        tokens: tf.Tensor,
        states: list[tf.Tensor],
        limits: tf.Tensor,
        width: tf.Tensor,
        alpha: tf.Tensor,
        keep_states: bool,
    ) -> dict[str, Any]:
        constant = 0 if self.spec.memory_shape is None else 1
        return beam.beam_search(
            self._step_call, tokens, states, limits, width, alpha, self._end, keep_states, constant
        )

    def _beam_decode_graph(
        self, sources: tf.Tensor, limits: tf.Tensor, width: tf.Tensor, alpha: tf.Tensor
    ) -> dict[str, Any]:
        states = self._encode_call(sources)
        tokens = self._start_tokens(sources)
        return self._beam_graph(tokens, states, limits, width, alpha, keep_states=False)

    def _run_graph(self, tokens: tf.Tensor, states: list[tf.Tensor], probs: bool) -> dict[str, Any]:
        return loops.run(self._step_call, tokens, states, probs, self._out_card)

    # ---- numpy API (Compute) -------------------------------------------------------

    @staticmethod
    def _decoded(result: dict[str, Any], batch: int, steps: int | None = None) -> Decoded:
        tokens = result["tokens"].numpy()
        lengths = (
            result["lengths"].numpy() if "lengths" in result else np.full(batch, steps, np.int32)
        )
        probs = result["probs"].numpy() if "probs" in result else None
        states = [s.numpy() for s in result.get("states", ())]
        return Decoded(tokens, lengths, probs, states, result["scores"].numpy())

    @staticmethod
    def _beams(result: dict[str, Any]) -> Beams:
        return Beams(
            tokens=result["tokens"].numpy(),
            lengths=result["lengths"].numpy(),
            scores=result["scores"].numpy(),
            ranking=result["ranking"].numpy(),
            step_scores=result["step_scores"].numpy(),
            states=[s.numpy() for s in result.get("states", ())],
            steps_run=int(result["steps_run"]),
        )

    @staticmethod
    def _states(states: Sequence[np.ndarray]) -> list[tf.Tensor]:
        return [tf.constant(s, tf.float32) for s in states]

    @staticmethod
    def _params(sampling: Sampling) -> list[tf.Tensor]:
        return [
            tf.constant(sampling.temperature, tf.float32),
            tf.constant(sampling.top_k, tf.int32),
            tf.constant(sampling.top_p, tf.float32),
            tf.constant(sampling.seeds, tf.uint64),
            tf.constant(sampling.offsets, tf.int32),
        ]

    def encode(self, sources: np.ndarray) -> States:
        return [t.numpy() for t in self._encode_fn(tf.constant(sources, tf.int32))]

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        outputs = self._step_fn(tf.constant(tokens, tf.int32), self._states(states))
        return outputs[0].numpy(), [t.numpy() for t in outputs[1:]]

    def generate(
        self,
        tokens: np.ndarray,
        states: Sequence[np.ndarray],
        limits: np.ndarray,
        probs: bool,
        sampling: Sampling | None = None,
    ) -> Decoded:
        args = [tf.constant(tokens, tf.int32), self._states(states), tf.constant(limits, tf.int32)]
        if sampling is None:
            result = self._generate_fns[probs](*args)
        else:
            result = self._sample_fns[probs](*args, self._params(sampling))
        return self._decoded(result, len(tokens))

    def decode(
        self,
        sources: np.ndarray,
        limits: np.ndarray,
        probs: bool,
        sampling: Sampling | None = None,
    ) -> Decoded:
        args = [tf.constant(sources, tf.int32), tf.constant(limits, tf.int32)]
        if sampling is None:
            result = self._decode_fns[probs](*args)
        else:
            result = self._sample_decode_fns[probs](*args, self._params(sampling))
        return self._decoded(result, len(sources))

    def beam(
        self,
        tokens: np.ndarray,
        states: Sequence[np.ndarray],
        limits: np.ndarray,
        width: int,
        alpha: np.ndarray,
    ) -> Beams:
        result = self._beam_fn(
            tf.constant(tokens, tf.int32),
            self._states(states),
            tf.constant(limits, tf.int32),
            tf.constant(width, tf.int32),
            tf.constant(alpha, tf.float32),
        )
        return self._beams(result)

    def beam_decode(
        self, sources: np.ndarray, limits: np.ndarray, width: int, alpha: np.ndarray
    ) -> Beams:
        result = self._beam_decode_fn(
            tf.constant(sources, tf.int32),
            tf.constant(limits, tf.int32),
            tf.constant(width, tf.int32),
            tf.constant(alpha, tf.float32),
        )
        return self._beams(result)

    def run(self, tokens: np.ndarray, states: Sequence[np.ndarray], probs: bool) -> Decoded:
        result = self._run_fns[probs](tf.constant(tokens, tf.int32), self._states(states))
        return self._decoded(result, tokens.shape[0], tokens.shape[1])
