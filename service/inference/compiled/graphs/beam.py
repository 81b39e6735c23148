"""service/inference/reference/beam.py's beam search as one `tf.while_loop` (see there for
the rules). `width` is a tensor, so one trace serves every beam width."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

Step = Callable[[tf.Tensor, list[tf.Tensor]], list[tf.Tensor]]  # -> [probs, *states]
NEG_INF = float("-inf")


def penalty(length: tf.Tensor, alpha: tf.Tensor) -> tf.Tensor:
    return tf.pow((5.0 + tf.cast(length, tf.float32)) / 6.0, alpha)


def _top(values: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """Per row, the positions of the k largest, largest first (ties: lower position)."""
    return tf.math.top_k(values, k=k, sorted=True).indices


def _take(values: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    return tf.gather(values, index, batch_dims=1)


def _split(state: tf.Tensor, batch: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    return tf.reshape(state, tf.concat([[batch, width], tf.shape(state)[1:]], 0))


def _join(state: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(state)
    return tf.reshape(state, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))


def beam_search(
    step: Step,
    tokens: tf.Tensor,
    states: list[tf.Tensor],
    limits: tf.Tensor,
    width: tf.Tensor,
    alpha: tf.Tensor,
    end: int | None,
    keep_states: bool,
    constant: int = 0,
    horizon: tf.Tensor | None = None,
) -> dict[str, Any]:
    """`constant`: the last states never change (an attention memory): they are tiled
    once, never regathered, and a row's value is the same for every hypothesis.
    `horizon` (XLA, where shapes are compile-time constants): at least max(limits); the
    results are then (.., horizon) wide, and "steps_run" says how much of it counts."""
    batch = tf.shape(tokens)[0]
    varying = len(states) - constant
    fixed = [tf.repeat(s, width, axis=0) for s in states[varying:]]
    steps = tf.reduce_max(limits)
    columns = steps if horizon is None else horizon
    neg = tf.constant(NEG_INF, tf.float32)
    grid = tf.stack([batch, width, columns])
    first = tf.range(width)[None, :] == 0
    live_score = tf.where(first, 0.0, neg) + tf.zeros(tf.stack([batch, width]))
    pool_states = [
        tf.zeros_like(_split(tf.repeat(s, width, axis=0), batch, width)) for s in states[:varying]
    ]
    if not keep_states:
        pool_states = []
    initial = (
        tf.constant(0),
        tf.repeat(tokens, width),
        [tf.repeat(s, width, axis=0) for s in states[:varying]],
        live_score,
        tf.zeros(grid, tf.int32),  # live sequences
        tf.zeros(grid, tf.float32),  # live step scores
        tf.zeros(grid, tf.int32),  # pool sequences
        tf.zeros(grid, tf.float32),  # pool step scores
        tf.fill(tf.stack([batch, width]), neg),  # pool scores
        tf.fill(tf.stack([batch, width]), neg),  # pool ranks
        tf.zeros(tf.stack([batch, width]), tf.int32),  # pool lengths
        pool_states,
        tf.zeros([batch], tf.bool),  # done
    )

    def cond(t: tf.Tensor, *rest: Any) -> tf.Tensor:
        return tf.logical_and(t < steps, tf.logical_not(tf.reduce_all(rest[-1])))

    def body(
        t: tf.Tensor,
        live_tok: tf.Tensor,
        live_states: list[tf.Tensor],
        live_score: tf.Tensor,
        live_seq: tf.Tensor,
        live_steps: tf.Tensor,
        pool_seq: tf.Tensor,
        pool_steps: tf.Tensor,
        pool_score: tf.Tensor,
        pool_rank: tf.Tensor,
        pool_len: tf.Tensor,
        pool_states: list[tf.Tensor],
        done: tf.Tensor,
    ) -> tuple[Any, ...]:
        result = step(live_tok, [*live_states, *fixed])
        probs, new_states = result[0], result[1 : 1 + varying]
        vocab = tf.shape(probs)[1]
        logp = tf.reshape(tf.math.log(probs), [batch, width * vocab])
        extended = tf.reshape(
            live_score[:, :, None] + tf.reshape(logp, [batch, width, vocab]), [batch, -1]
        )
        k = tf.minimum(2 * width, width * vocab)
        top = _top(extended, k)
        score = _take(extended, top)
        parent, token = top // vocab, top % vocab
        here = (tf.range(columns) == t)[None, None, :]
        seq = tf.where(here, token[:, :, None], _take(live_seq, parent))
        step_scores = tf.where(here, _take(logp, top)[:, :, None], _take(live_steps, parent))
        grown = [_take(_split(s, batch, width), parent) for s in new_states]
        is_end = tf.equal(token, end) if end is not None else tf.zeros_like(token, tf.bool)
        length = t + 1
        rank = score / penalty(length, alpha)[:, None]
        active = tf.logical_not(done)[:, None]
        among_best = (tf.range(k) < width)[None, :]  # see beam_search.py
        counted = tf.logical_and(tf.logical_and(is_end, active), among_best)
        ended_rank = tf.where(counted, rank, neg)
        unended = tf.where(is_end, neg, score)
        keep = _top(unended, width)
        live_score = _take(unended, keep)
        live_seq, live_steps = _take(seq, keep), _take(step_scores, keep)
        kept = [_take(g, keep) for g in grown]
        at_limit = length >= limits
        unended_rank = _take(tf.where(is_end, neg, rank), keep)
        limit_rank = tf.where(tf.logical_and(at_limit[:, None], active), unended_rank, neg)
        all_rank = tf.concat([pool_rank, ended_rank, limit_rank], axis=1)
        best = _top(all_rank, width)
        pool_rank = _take(all_rank, best)
        pool_score = _take(tf.concat([pool_score, score, live_score], axis=1), best)
        pool_seq = _take(tf.concat([pool_seq, seq, live_seq], axis=1), best)
        pool_steps = _take(tf.concat([pool_steps, step_scores, live_steps], axis=1), best)
        lengths = tf.fill(tf.stack([batch, k + width]), length)
        pool_len = _take(tf.concat([pool_len, lengths], axis=1), best)
        if keep_states:
            pool_states = [
                _take(tf.concat([p, g, q], axis=1), best)
                for p, g, q in zip(pool_states, grown, kept, strict=True)
            ]
        bound = live_score[:, 0] / penalty(limits, alpha)
        done = tf.logical_or(done, at_limit)
        done = tf.logical_or(done, tf.equal(live_score[:, 0], neg))
        done = tf.logical_or(done, pool_rank[:, -1] >= bound)
        live_score = tf.where(done[:, None], neg, live_score)
        live_tok = tf.reshape(live_seq[:, :, t], [-1])
        live_states = [_join(s) for s in kept]
        return (
            t + 1,
            live_tok,
            live_states,
            live_score,
            live_seq,
            live_steps,
            pool_seq,
            pool_steps,
            pool_score,
            pool_rank,
            pool_len,
            pool_states,
            done,
        )

    final = tf.while_loop(cond, body, initial)
    t, pool_seq, pool_steps, pool_score, pool_rank, pool_len, pool_states = (
        final[0],
        final[6],
        final[7],
        final[8],
        final[9],
        final[10],
        final[11],
    )
    exists = pool_rank > neg
    result: dict[str, Any] = {
        "tokens": pool_seq[:, :, :t] if horizon is None else pool_seq,
        "lengths": tf.where(exists, pool_len, 0),
        "scores": tf.where(exists, pool_score, neg),
        "ranking": pool_rank,
        "step_scores": pool_steps[:, :, :t] if horizon is None else pool_steps,
        "steps_run": t,
    }
    if keep_states:
        result["states"] = [s[:, 0] for s in pool_states] + list(states[varying:])
    return result
