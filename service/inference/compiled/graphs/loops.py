"""The greedy/sampled generate loop and the teacher-forced run loop as `tf.while_loop`s
over a step function (the same rules as service/inference/reference/compute.py's reference)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

Step = Callable[[tf.Tensor, list[tf.Tensor]], list[tf.Tensor]]  # -> [probs, *states]
# probabilities (batch, V) and the step index -> the chosen token per row
Choose = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def argmax(probs: tf.Tensor, _t: tf.Tensor) -> tf.Tensor:
    return tf.argmax(probs, axis=-1, output_type=tf.int32)


def _rows(mask: tf.Tensor, state: tf.Tensor) -> tf.Tensor:
    return tf.reshape(mask, [-1] + [1] * (state.shape.rank - 1))


def _array(
    dtype: tf.DType, width: int | None = None, horizon: tf.Tensor | None = None
) -> tf.TensorArray:
    """Growing as the loop writes; or, for XLA (which needs static shapes), `horizon`
    elements (a compile-time constant there: a shape)."""
    shape = tf.TensorShape([None] if width is None else [None, width])
    if horizon is None:
        return tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=shape)
    return tf.TensorArray(dtype, size=horizon, dynamic_size=False, element_shape=shape)


def _chosen_log_prob(probs: tf.Tensor, chosen: tf.Tensor) -> tf.Tensor:
    return tf.math.log(tf.gather(probs, chosen, batch_dims=1))


def _batch_major(
    arrays: dict[str, tf.TensorArray], steps: tf.Tensor, horizon: tf.Tensor | None
) -> dict[str, Any]:
    """Step-major TensorArrays -> batch-major tensors (batch, steps[, V]); with a
    `horizon`, all of it (batch, horizon[, V]) and "steps_run": the caller cuts it."""
    result: dict[str, Any] = {}
    for name, array in arrays.items():
        stacked = array.stack()
        perm = [1, 0] if stacked.shape.rank == 2 else [1, 0, 2]
        result[name] = tf.transpose(stacked if horizon is not None else stacked[:steps], perm)
    if horizon is not None:
        result["steps_run"] = steps
    return result


def generate(
    step: Step,
    tokens: tf.Tensor,
    states: list[tf.Tensor],
    limits: tf.Tensor,
    probs: bool,
    width: int,
    end: int | None,
    choose: Choose = argmax,
    horizon: tf.Tensor | None = None,
) -> dict[str, Any]:
    """Feed `tokens`, then each row's chosen token, up to limits[i] steps or the end
    token; stops as soon as every row is done. `horizon` (XLA): at least max(limits)."""
    batch = tf.shape(tokens)[0]
    steps = tf.reduce_max(limits)
    arrays = {
        "tokens": _array(tf.int32, None, horizon),
        "scores": _array(tf.float32, None, horizon),
    }
    if probs:
        arrays["probs"] = _array(tf.float32, width, horizon)

    def cond(t: tf.Tensor, _tok: tf.Tensor, _s: Any, _f: Any, done: tf.Tensor, *_: Any) -> Any:
        return tf.logical_and(t < steps, tf.logical_not(tf.reduce_all(done)))

    def body(
        t: tf.Tensor,
        tok: tf.Tensor,
        current: list[tf.Tensor],
        final: list[tf.Tensor],
        done: tf.Tensor,
        lengths: tf.Tensor,
        arrays: dict[str, tf.TensorArray],
    ) -> tuple[Any, ...]:
        result = step(tok, current)
        p, new = result[0], result[1:]
        chosen = choose(p, t)
        active = tf.logical_not(done)
        final = [tf.where(_rows(active, n), n, f) for n, f in zip(new, final, strict=True)]
        lengths += tf.cast(active, tf.int32)
        arrays = dict(arrays)
        arrays["tokens"] = arrays["tokens"].write(t, chosen)
        arrays["scores"] = arrays["scores"].write(t, _chosen_log_prob(p, chosen))
        if probs:
            arrays["probs"] = arrays["probs"].write(t, p)
        t += 1
        done = tf.logical_or(done, t >= limits)
        if end is not None:
            done = tf.logical_or(done, tf.equal(chosen, end))
        return t, chosen, new, final, done, lengths, arrays

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
            arrays,
        ],
    )
    t, final, lengths, arrays = loop[0], loop[3], loop[5], loop[6]
    result = _batch_major(arrays, t, horizon)
    result.update(lengths=lengths, states=final)
    return result


def run(
    step: Step,
    tokens: tf.Tensor,
    states: list[tf.Tensor],
    probs: bool,
    width: int,
    steps: tf.Tensor | None = None,
) -> dict[str, Any]:
    """Feed the given tokens (batch, steps) one step at a time. `steps` (XLA): feed only
    the first `steps` columns of `tokens` (padded to a fixed width, its horizon)."""
    horizon = None if steps is None else tf.shape(tokens)[1]
    if steps is None:
        steps = tf.shape(tokens)[1]
    arrays = {
        "tokens": _array(tf.int32, None, horizon),
        "scores": _array(tf.float32, None, horizon),
    }
    if probs:
        arrays["probs"] = _array(tf.float32, width, horizon)

    def body(
        t: tf.Tensor, current: list[tf.Tensor], arrays: dict[str, tf.TensorArray]
    ) -> tuple[Any, ...]:
        result = step(tokens[:, t], current)
        chosen = argmax(result[0], t)
        arrays = dict(arrays)
        arrays["tokens"] = arrays["tokens"].write(t, chosen)
        arrays["scores"] = arrays["scores"].write(t, _chosen_log_prob(result[0], chosen))
        if probs:
            arrays["probs"] = arrays["probs"].write(t, result[0])
        return t + 1, result[1:], arrays

    _, final, arrays = tf.while_loop(
        lambda t, *_: t < steps, body, [tf.constant(0), list(states), arrays]
    )
    result = _batch_major(arrays, steps, horizon)
    result["states"] = final
    return result
