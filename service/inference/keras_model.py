"""Keras models behind the `Compute` protocol. The only module that imports TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from service.inference.base import Decoded, LoadedModel, ModelSpec, States
from service.inference.loop import LoopCompute
from service.inference.manifest import FILES_BY_KIND, Manifest, ManifestError


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Set TF thread pools; only effective before TF runs its first op (0 = TF default)."""
    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # already initialised (e.g. a second app in one process)
        pass


def _shape(tensor: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in tensor.shape)


def _load(directory: Path, filename: str) -> keras.Model:
    path = directory / filename
    if not path.is_file():
        raise ManifestError(f"{directory}: missing model file {filename}")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for unreadable files
        raise ManifestError(f"{directory}: cannot load {filename}: {exc}") from None


def _check_token_input(
    directory: Path, what: str, shape: tuple[int | None, ...], manifest: Manifest
) -> None:
    card = manifest.input.cardinality
    if manifest.input.encoding == "one_hot":
        if len(shape) != 3 or shape[-1] != card:
            raise ManifestError(
                f"{directory}: {what} input shape {shape} does not match one_hot input of "
                f"cardinality {card} (expected (batch, time, {card}))"
            )
    elif len(shape) != 2:
        raise ManifestError(
            f"{directory}: {what} input shape {shape} does not match index input "
            "(expected (batch, time) integer tokens)"
        )


def _unroll_recurrent_layers(model: keras.Model) -> None:
    """The decoder only ever sees one time step, so unrolling its RNN layers computes
    exactly the same cell call without a nested `while_loop` (measured ~15% faster per
    decode on the shipped model, identical outputs)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.RNN):
            layer.unroll = True


class KerasCompute(LoopCompute):
    """Encoder/decoder (or step) models in traced `tf.function`s.

    Each operation is one graph call per batch: the whole greedy decode (encoder and
    every decoder step in a `tf.while_loop`, stopping early once every row is done),
    the whole teacher-forced run, or one step. Input signatures leave batch and length
    open, so varying requests never retrace; `probs` (whether probabilities are
    returned) is the only Python-level switch, so each function traces at most twice.
    """

    def __init__(self, spec: ModelSpec, encoder: keras.Model | None, decoder: keras.Model):
        manifest = spec.manifest
        self.spec = spec
        _unroll_recurrent_layers(decoder)
        self._encoder = encoder
        self._decoder = decoder
        self._one_hot = manifest.input.encoding == "one_hot"
        self._card = manifest.input.cardinality
        self._out_card = manifest.output_cardinality
        self._end = manifest.end_token
        self._start = manifest.start_token
        self._token_dtype = decoder.inputs[0].dtype
        tokens = tf.TensorSpec([None], tf.int32)
        matrix = tf.TensorSpec([None, None], tf.int32)
        states = [tf.TensorSpec([None, *s], tf.float32) for s in spec.state_shapes]
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
            self._source_dtype = encoder.inputs[0].dtype
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
        for batch in (1, 2):
            states = self.spec.zero_states(batch)
            tokens = np.zeros(batch, np.int32)
            limits = np.ones(batch, np.int32)
            self.step(tokens, states)
            for probs in (False, True):
                self.generate(tokens, states, limits, probs)
                self.run(tokens[:, None], states, probs)
                if self._encoder is not None:
                    self.decode(tokens[:, None], limits, probs)
            if self._encoder is not None:
                self.encode(tokens[:, None])

    def trace_count(self) -> int:
        """Total traces so far: must not grow with new batch sizes or lengths."""
        return sum(int(f.experimental_get_tracing_count()) for f in self._functions)

    # ---- graph pieces -------------------------------------------------------------

    def _tokens(self, tokens: tf.Tensor, dtype: Any) -> tf.Tensor:
        if self._one_hot:
            return tf.one_hot(tokens, self._card, dtype=dtype)
        return tf.cast(tokens, dtype)

    def _encode_graph(self, sources: tf.Tensor) -> list[tf.Tensor]:
        assert self._encoder is not None
        outputs = self._encoder(self._tokens(sources, self._source_dtype), training=False)
        return list(outputs) if isinstance(outputs, list | tuple) else [outputs]

    def _step_graph(self, tokens: tf.Tensor, states: list[tf.Tensor]) -> list[tf.Tensor]:
        x = self._tokens(tokens[:, None], self._token_dtype)
        outputs = self._decoder([x, *states], training=False)
        probs = outputs[0]
        if probs.shape.rank == 3:
            probs = probs[:, -1, :]
        return [probs, *outputs[1:]]

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


def load_model(directory: Path, name: str, version: int, manifest: Manifest) -> LoadedModel:
    """Load one version directory, checking the manifest against the models."""
    files = FILES_BY_KIND[manifest.kind]
    decoder = _load(directory, files[-1])
    encoder = _load(directory, files[0]) if manifest.kind == "seq2seq" else None
    what = "decoder" if encoder is not None else "step model"

    n_states = len(decoder.inputs) - 1
    if n_states < 1 or len(decoder.outputs) != n_states + 1:
        raise ManifestError(
            f"{directory}: {what} must take [token, *states] and return [probabilities, *states]; "
            f"it has {len(decoder.inputs)} inputs and {len(decoder.outputs)} outputs"
        )
    _check_token_input(directory, what, _shape(decoder.inputs[0]), manifest)
    state_shapes: list[tuple[int, ...]] = []
    for i, (state_in, state_out) in enumerate(
        zip(decoder.inputs[1:], decoder.outputs[1:], strict=True)
    ):
        shape_in, shape_out = _shape(state_in)[1:], _shape(state_out)[1:]
        if None in shape_in or shape_in != shape_out:
            raise ManifestError(
                f"{directory}: {what} state {i} has input shape {shape_in} and output shape "
                f"{shape_out}; they must be equal and fully defined"
            )
        state_shapes.append(tuple(int(d) for d in shape_in if d is not None))
    out_card = _shape(decoder.outputs[0])[-1]
    if out_card != manifest.output_cardinality:
        raise ManifestError(
            f"{directory}: {what} outputs {out_card} probabilities, manifest "
            f"output_cardinality is {manifest.output_cardinality}"
        )
    if encoder is not None:
        _check_token_input(directory, "encoder", _shape(encoder.inputs[0]), manifest)
        enc_shapes = [_shape(t)[1:] for t in encoder.outputs]
        if enc_shapes != [tuple(s) for s in state_shapes]:
            raise ManifestError(
                f"{directory}: encoder returns states of shapes {enc_shapes}, decoder takes "
                f"{state_shapes}"
            )
    spec = ModelSpec(name, version, manifest, tuple(state_shapes))
    compute = KerasCompute(spec, encoder, decoder)
    compute.warm_up()
    return LoadedModel(spec, compute)
