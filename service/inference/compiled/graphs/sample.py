"""service/inference/reference/sampling.py's rule as TensorFlow ops (see there for why)."""

from __future__ import annotations

import tensorflow as tf

from service.inference.reference import sampling as rule


def _u64(value: object) -> tf.Tensor:
    return tf.constant(int(value), tf.uint64)  # type: ignore[call-overload]


def _shift(x: tf.Tensor, bits: int) -> tf.Tensor:
    return tf.bitwise.right_shift(x, tf.constant(bits, tf.uint64))


def mix(x: tf.Tensor) -> tf.Tensor:
    x = tf.bitwise.bitwise_xor(x, _shift(x, 30)) * _u64(rule.MIX_1)
    x = tf.bitwise.bitwise_xor(x, _shift(x, 27)) * _u64(rule.MIX_2)
    return tf.bitwise.bitwise_xor(x, _shift(x, 31))


def uniform(seeds: tf.Tensor, steps: tf.Tensor) -> tf.Tensor:
    bits = mix(seeds + (tf.cast(steps, tf.uint64) + _u64(1)) * _u64(rule.GOLDEN))
    return tf.cast(_shift(bits, 40), tf.float32) / tf.constant(2.0**24, tf.float32)


def choose(
    probs: tf.Tensor,
    temperature: tf.Tensor,
    top_k: tf.Tensor,
    top_p: tf.Tensor,
    u: tf.Tensor,
) -> tf.Tensor:
    vocab = tf.shape(probs)[1]
    logp = tf.math.log(tf.maximum(probs, tf.constant(float(rule.TINY), tf.float32)))
    safe = tf.where(temperature > 0, temperature, tf.ones_like(temperature))
    z = logp / safe[:, None]
    q = tf.exp(z - tf.reduce_max(z, axis=1, keepdims=True))
    q = q / tf.reduce_sum(q, axis=1, keepdims=True)
    ranked, order = tf.math.top_k(q, k=vocab, sorted=True)  # ties: lower index first
    before = tf.cumsum(ranked, axis=1) - ranked
    k = tf.where(top_k > 0, top_k, tf.fill(tf.shape(top_k), vocab))
    rank = tf.range(vocab)[None, :]
    # the most probable token always stays (see sampling.py)
    keep = tf.logical_or(rank == 0, tf.logical_and(rank < k[:, None], before < top_p[:, None]))
    weights = tf.where(keep, ranked, tf.zeros_like(ranked))
    target = u * tf.reduce_sum(weights, axis=1)
    position = tf.reduce_sum(
        tf.cast(tf.cumsum(weights, axis=1) <= target[:, None], tf.int32), axis=1
    )
    position = tf.minimum(position, tf.reduce_sum(tf.cast(keep, tf.int32), axis=1) - 1)
    drawn = tf.gather(order, position, batch_dims=1)
    greedy = tf.argmax(probs, axis=1, output_type=tf.int32)
    return tf.where(temperature > 0, drawn, greedy)
