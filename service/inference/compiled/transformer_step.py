"""Encode and one decoder step of a Transformer decoder (model/transformer_layout.py
says how its tokens so far, position and source mask are carried), in prefix mode:
each step writes the fed token at the row's position, runs the decoder on the whole
window and reads the probabilities at that position."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tensorflow as tf
from keras.src.backend.common.masking import get_keras_mask

from service.inference.model.formats.graph import Graph
from service.inference.model.layout import Layout


@contextmanager
def masks_handled() -> Iterator[None]:
    """Keras warns, when a traced layer gets a tensor carrying a mask it does not use,
    that the mask is dropped: these calls handle the masks themselves (the memory's is
    carried and given back explicitly)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*does not support masking", category=UserWarning
        )
        yield


def encode(encoder: Graph, layout: Layout, sources: tf.Tensor) -> list[tf.Tensor]:
    """Sources -> [tokens so far (zeros), position (0), memory with the mask channel].
    The mask is the one Keras computed for the encoder's output (token != 0 where its
    embedding masks, as mask_zero=True and keras-io's compute_mask do); ones where the
    model computes none."""
    assert layout.window is not None and layout.encoder_memory is not None
    x = tf.cast(sources, encoder.inputs[0].dtype)
    with masks_handled():
        outputs = encoder([x])
    memory = outputs[layout.encoder_memory]
    mask = get_keras_mask(memory)
    if mask is None:
        mask = tf.ones(tf.shape(memory)[:2], tf.float32)
    batch = tf.shape(sources)[0]
    carried = tf.concat([tf.cast(memory, tf.float32), tf.cast(mask, tf.float32)[..., None]], -1)
    return [
        tf.zeros([batch, layout.window], tf.float32),
        tf.zeros([batch, 1], tf.float32),
        carried,
    ]


def step(
    decoder: Graph, layout: Layout, logits: bool, tokens: tf.Tensor, carried: list[tf.Tensor]
) -> list[tf.Tensor]:
    """[probabilities at the fed token's position, tokens so far, position + 1, memory]."""
    assert layout.window is not None and layout.decoder_memory is not None
    so_far, position, memory = carried
    at = tf.cast(position[:, 0], tf.int32)
    here = tf.one_hot(at, layout.window, dtype=tf.float32)  # all zeros once at >= window
    so_far = so_far * (1.0 - here) + tf.cast(tokens, tf.float32)[:, None] * here
    specs = decoder.inputs
    inputs: list[Any] = [None, None]
    masks: list[Any] = [None, None]
    inputs[layout.decoder_token] = tf.cast(so_far, specs[layout.decoder_token].dtype)
    inputs[layout.decoder_memory] = tf.cast(memory[..., :-1], specs[layout.decoder_memory].dtype)
    masks[layout.decoder_memory] = memory[..., -1] > 0.5
    with masks_handled():
        outputs = decoder(inputs, masks)
    per_position = tf.cast(outputs[layout.decoder_probabilities], tf.float32)
    probs = tf.gather(per_position, tf.minimum(at, layout.window - 1), axis=1, batch_dims=1)
    if logits:
        probs = tf.nn.softmax(probs, axis=-1)
    return [probs, so_far, position + 1.0, memory]


def probe(encoder: Graph, decoder: Graph, layout: Layout, source_length: int) -> str | None:
    """Run the decoder once on its whole window (eagerly, at load): what it cannot read
    (a position table shorter than the window) is said at start-up, not per request."""
    assert layout.window is not None
    sources = tf.ones([1, source_length], tf.int32)
    try:
        carried = encode(encoder, layout, sources)
        step(decoder, layout, False, tf.ones([1], tf.int32), carried)
    except Exception as exc:  # noqa: BLE001 - any failure is the model's, reported whole
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return first[:300]
    return None
