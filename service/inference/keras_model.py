"""Keras models behind the `Compute` protocol. The only module that imports TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from service.inference.base import LoadedModel, ModelSpec, States
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


class KerasCompute:
    """Encoder/decoder (or step) models wrapped in traced `tf.function`s."""

    def __init__(self, spec: ModelSpec, encoder: keras.Model | None, decoder: keras.Model):
        manifest = spec.manifest
        self._encoder = encoder
        self._decoder = decoder
        self._one_hot = manifest.input.encoding == "one_hot"
        self._card = manifest.input.cardinality
        self._token_dtype = decoder.inputs[0].dtype
        state_specs = [tf.TensorSpec([None, *s], tf.float32) for s in spec.state_shapes]
        self._step_fn = tf.function(
            self._step_graph,
            input_signature=[tf.TensorSpec([None], tf.int32), state_specs],
        )
        if encoder is not None:
            self._source_dtype = encoder.inputs[0].dtype
            self._encode_fn = tf.function(
                self._encode_graph, input_signature=[tf.TensorSpec([None, None], tf.int32)]
            )

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

    def encode(self, sources: np.ndarray) -> States:
        return [t.numpy() for t in self._encode_fn(tf.constant(sources, tf.int32))]

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        outputs = self._step_fn(tf.constant(tokens, tf.int32), [tf.constant(s) for s in states])
        return outputs[0].numpy(), [t.numpy() for t in outputs[1:]]


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
    return LoadedModel(spec, KerasCompute(spec, encoder, decoder))
