"""Cached mode for Transformer decoders built from KerasHub layers: the decoder is
re-composed as a chain (`TokenAndPositionEmbedding`, `TransformerDecoder` layers with
cross-attention, position-wise layers such as `Dropout` and `Dense`) whose step feeds one
token per row, with each layer's self-attention keys and values kept in a cache and its
cross-attention keys and values computed once, so a step's cost does not grow with the
prefix.

A call takes prefix mode's states (the tokens so far, their count, the memory with its
mask; transformer_step.py) and first builds every layer's caches with one pass of the
chain over the whole window (the tokens so far; later positions are never read), or takes
those states already extended by the caches of the call before (cached_steps.py), then
loops over cached steps. Each row
has its own position, so the new key and value are written per row (a one-hot write) and
each row's self-attention sees positions up to its own; the attention itself is
KerasHub's (`CachedMultiHeadAttention` reading the given cache)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

POSITION_WISE = (
    keras.layers.Dropout,
    keras.layers.Dense,
    keras.layers.Activation,
    keras.layers.Softmax,
    keras.layers.LayerNormalization,
)


@dataclass
class Chain:
    embedding: Any  # keras_hub.layers.TokenAndPositionEmbedding
    decoders: list[Any]  # keras_hub.layers.TransformerDecoder, with cross-attention
    head: list[keras.layers.Layer]  # position-wise, after the last decoder
    mask_tokens: bool  # the embedding masks id 0 (mask_zero=True)

    @property
    def caches(self) -> int:
        return len(self.decoders)


def find_chain(model: Any) -> Chain | str:
    """The decoder as a chain the service can re-compose, or why it cannot."""
    try:
        from keras_hub.layers import TokenAndPositionEmbedding, TransformerDecoder
    except ImportError:
        return "keras-hub is not installed (pip install '.[transformers]')"
    if not isinstance(model, keras.Model):
        return "the decoder is not a Keras model"
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(model.inputs) != 2 or len(model.outputs) != 1:
        return "the decoder does not take exactly (tokens, memory) and return one output"
    if not layers or not isinstance(layers[0], TokenAndPositionEmbedding):
        return "its first layer is not KerasHub's TokenAndPositionEmbedding"
    decoders: list[Any] = []
    rest = layers[1:]
    while rest and isinstance(rest[0], TransformerDecoder):
        decoders.append(rest.pop(0))
    if not decoders:
        return "no KerasHub TransformerDecoder follows the embedding"
    for layer in decoders:
        if layer._cross_attention_layer is None:
            return f"{layer.name} has no cross-attention"
    for layer in rest:
        if not isinstance(layer, POSITION_WISE):
            return f"{layer.name} ({type(layer).__name__}) after the decoders is not position-wise"
    for layer in layers:
        if len(layer._inbound_nodes) != 1:
            return f"{layer.name} is called more than once"
    # the layer keeps mask_zero in its config (and on its token_embedding sublayer)
    return Chain(layers[0], decoders, rest, bool(layers[0].get_config().get("mask_zero")))


def heads(attention: Any) -> tuple[int, int]:
    return int(attention.num_heads), int(attention.key_dim)


def build(chain: Chain, so_far: tf.Tensor, mask: tf.Tensor, memory: tf.Tensor) -> list[Any]:
    """Every layer's (self, cross) caches from one pass over the whole window."""
    window = so_far.shape[1]
    tokens = tf.cast(so_far, tf.int32)
    x = chain.embedding(tokens)
    padding = tf.not_equal(tokens, 0) if chain.mask_tokens else None
    caches: list[Any] = []
    batch, source = tf.shape(memory)[0], tf.shape(memory)[1]
    for layer in chain.decoders:
        h, d = heads(layer._self_attention_layer)
        hc, dc = heads(layer._cross_attention_layer)
        self_cache = tf.zeros([batch, 2, window, h, d], x.dtype)
        cross_cache = tf.zeros([batch, 2, source, hc, dc], x.dtype)
        x, self_cache, cross_cache = layer(
            x,
            memory,
            decoder_padding_mask=padding,
            encoder_padding_mask=mask,
            self_attention_cache=self_cache,
            self_attention_cache_update_index=0,
            cross_attention_cache=cross_cache,
            cross_attention_cache_update_index=0,
            training=False,
        )
        caches += [self_cache, cross_cache]
    return caches


def start(chain: Chain, so_far: tf.Tensor, memory: tf.Tensor) -> tuple[list[Any], list[Any]]:
    """Caches for rows no token was fed to yet: self-attention ones zeros (a step writes
    its key and value before reading any), cross-attention ones from the memory, as the
    layers compute them (CachedMultiHeadAttention's key and value projections)."""
    window = so_far.shape[1]
    batch = tf.shape(memory)[0]
    selfs, crosses = [], []
    for layer in chain.decoders:
        h, d = heads(layer._self_attention_layer)
        selfs.append(tf.zeros([batch, 2, window, h, d], memory.dtype))
        cross = layer._cross_attention_layer
        crosses.append(tf.stack([cross._key_dense(memory), cross._value_dense(memory)], axis=1))
    return selfs, crosses


def step(
    chain: Chain,
    tokens: tf.Tensor,
    so_far: tf.Tensor,
    at: tf.Tensor,
    mask: tf.Tensor,
    caches: list[Any],
) -> tuple[tf.Tensor, list[Any]]:
    """One token per row at its own position `at` (so_far already holds it) ->
    the head's output at that position (batch, vocab), and the updated caches."""
    window = so_far.shape[1]
    x = chain.embedding(tokens[:, None], positions=at[:, None])
    here = tf.one_hot(at, window, dtype=x.dtype)[:, :, None, None]  # (batch, window, 1, 1)
    seen = tf.range(window)[None, :] <= at[:, None]  # (batch, window)
    if chain.mask_tokens:
        seen = tf.logical_and(seen, tf.not_equal(tf.cast(so_far, tf.int32), 0))
    self_mask = seen[:, None, :]
    cross_mask = mask[:, None, :]
    updated: list[Any] = []
    for k, layer in enumerate(chain.decoders):
        self_cache, cross_cache = caches[2 * k], caches[2 * k + 1]
        attention = layer._self_attention_layer
        # TransformerDecoder.call's order of residuals and norms, with the new key and
        # value written at each row's own position
        residual = x
        if layer.normalize_first:
            x = layer._self_attention_layer_norm(x)
        key = attention._key_dense(x)  # (batch, 1, heads, dim)
        value = attention._value_dense(x)
        keys = self_cache[:, 0] * (1.0 - here) + key * here
        values = self_cache[:, 1] * (1.0 - here) + value * here
        self_cache = tf.stack([keys, values], axis=1)
        x, _ = attention(
            query=x, value=x, attention_mask=self_mask, cache=self_cache, training=False
        )
        x = layer._self_attention_dropout(x, training=False)
        x = x + residual
        if not layer.normalize_first:
            x = layer._self_attention_layer_norm(x)
        residual = x
        if layer.normalize_first:
            x = layer._cross_attention_layer_norm(x)
        x, _ = layer._cross_attention_layer(
            query=x, value=x, attention_mask=cross_mask, cache=cross_cache, training=False
        )
        x = layer._cross_attention_dropout(x, training=False)
        x = x + residual
        if not layer.normalize_first:
            x = layer._cross_attention_layer_norm(x)
        residual = x
        if layer.normalize_first:
            x = layer._feedforward_layer_norm(x)
        x = layer._feedforward_intermediate_dense(x)
        x = layer._feedforward_output_dense(x)
        x = layer._feedforward_dropout(x, training=False)
        x = x + residual
        if not layer.normalize_first:
            x = layer._feedforward_layer_norm(x)
        updated += [self_cache, cross_cache]
    for layer in chain.head:
        x = layer(x, training=False) if isinstance(layer, keras.layers.Dropout) else layer(x)
    return x[:, 0, :], updated
