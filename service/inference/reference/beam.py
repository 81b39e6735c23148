"""Beam search in numpy over any `step` function: the reference the compiled graph
(graphs/beam.py) follows step for step.

Each row keeps `width` live hypotheses and a pool of the `width` best finished ones.
At every step the live ones are extended by every token. Of the best `width`
extensions, those ending with the end token join the pool (so width 1 is greedy),
ranked by log-probability / ((5 + length) / 6) ** alpha (GNMT's length penalty;
alpha 0: plain log-probability); the best `width` extensions that did not end (of the
best 2 x width) stay live. A row's live hypotheses join the pool, ranked the same way,
when they reach its step limit. So finished and unfinished hypotheses are only ever
compared by the same normalised score. A row stops early once no live hypothesis could
still enter its pool: log-probabilities only fall as a hypothesis grows, so the best
live one can at most reach its score / penalty(limit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from service.inference.model.interface import Beams, States

Step = Callable[[np.ndarray, Sequence[np.ndarray]], tuple[np.ndarray, States]]
NEG_INF = np.float32(-np.inf)


def penalty(length: np.ndarray | int, alpha: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.power((np.float32(5) + np.float32(length)) / np.float32(6), alpha)
    return result


def log_probs(probs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):  # a probability of exactly 0: -inf, never chosen
        result: np.ndarray = np.log(probs).astype(np.float32)
    return result


def _take(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values (batch, n, ...) picked by index (batch, k) -> (batch, k, ...)."""
    rows = np.arange(values.shape[0])[:, None]
    picked: np.ndarray = values[rows, index]
    return picked


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Per row, the positions of the k largest, largest first (ties: lower position)."""
    order: np.ndarray = np.argsort(-values, axis=1, kind="stable")[:, :k]
    return order


def beam_search(
    step: Step,
    tokens: np.ndarray,
    states: Sequence[np.ndarray],
    limits: np.ndarray,
    width: int,
    alpha: np.ndarray,
    end: int | None,
    constant: int = 0,
) -> Beams:
    """`constant`: the last states never change (an attention memory): carried as they
    are, never regathered."""
    batch = len(tokens)
    varying = len(states) - constant
    fixed = [np.repeat(s, width, axis=0) for s in states[varying:]]
    steps = int(np.max(limits))
    alpha = alpha.astype(np.float32)
    live_tok = np.repeat(tokens.astype(np.int32), width)
    live_states = [np.repeat(s, width, axis=0) for s in states[:varying]]
    live_score = np.full((batch, width), NEG_INF)
    live_score[:, 0] = 0
    live_seq = np.zeros((batch, width, steps), np.int32)
    live_steps = np.zeros((batch, width, steps), np.float32)
    pool_seq = np.zeros((batch, width, steps), np.int32)
    pool_steps = np.zeros((batch, width, steps), np.float32)
    pool_score = np.full((batch, width), NEG_INF)
    pool_rank = np.full((batch, width), NEG_INF)
    pool_len = np.zeros((batch, width), np.int32)
    pool_states = [np.zeros((batch, width, *s.shape[1:]), np.float32) for s in states[:varying]]
    done = np.zeros(batch, bool)
    t = 0
    while t < steps and not done.all():
        probs, stepped = step(live_tok, [*live_states, *fixed])
        new_states = stepped[:varying]
        vocab = probs.shape[1]
        logp = log_probs(probs).reshape(batch, width * vocab)
        extended = (live_score[:, :, None] + logp.reshape(batch, width, vocab)).reshape(batch, -1)
        k = min(2 * width, width * vocab)
        top = _top(extended, k)
        score = np.take_along_axis(extended, top, axis=1)
        parent, token = top // vocab, (top % vocab).astype(np.int32)
        here = np.arange(steps) == t
        seq = np.where(here, token[:, :, None], _take(live_seq, parent))
        step_logp = np.take_along_axis(logp, top, axis=1)
        step_scores = np.where(here, step_logp[:, :, None], _take(live_steps, parent))
        grown = [_take(s.reshape(batch, width, *s.shape[1:]), parent) for s in new_states]
        is_end = token == end if end is not None else np.zeros_like(token, bool)
        length = t + 1
        rank = score / penalty(length, alpha)[:, None]
        # an ending counts only among the best `width` extensions (so width 1 is greedy)
        counted = is_end & ~done[:, None] & (np.arange(k) < width)[None, :]
        ended_rank = np.where(counted, rank, NEG_INF)
        # the best `width` extensions that did not end stay live
        keep = _top(np.where(is_end, NEG_INF, score), width)
        live_score = np.take_along_axis(np.where(is_end, NEG_INF, score), keep, axis=1)
        live_seq, live_steps = _take(seq, keep), _take(step_scores, keep)
        kept = [_take(g, keep) for g in grown]
        at_limit = length >= limits
        limit_rank = np.where(
            (at_limit & ~done)[:, None],
            np.take_along_axis(np.where(is_end, NEG_INF, rank), keep, axis=1),
            NEG_INF,
        )
        # the pool: the best `width` of the pool, the ended, and (at a limit) the live
        all_rank = np.concatenate([pool_rank, ended_rank, limit_rank], axis=1)
        best = _top(all_rank, width)
        pool_rank = np.take_along_axis(all_rank, best, axis=1)
        pool_score = _take(np.concatenate([pool_score, score, live_score], axis=1), best)
        pool_seq = _take(np.concatenate([pool_seq, seq, live_seq], axis=1), best)
        pool_steps = _take(np.concatenate([pool_steps, step_scores, live_steps], axis=1), best)
        lengths = np.full((batch, k + width), length, np.int32)
        pool_len = _take(np.concatenate([pool_len, lengths], axis=1), best)
        pool_states = [
            _take(np.concatenate([p, g, q], axis=1), best)
            for p, g, q in zip(pool_states, grown, kept, strict=True)
        ]
        bound = live_score[:, 0] / penalty(limits, alpha)
        done = done | at_limit | (live_score[:, 0] == NEG_INF) | (pool_rank[:, -1] >= bound)
        live_score = np.where(done[:, None], NEG_INF, live_score)
        live_tok = live_seq[:, :, t].reshape(-1)
        live_states = [s.reshape(batch * width, *s.shape[2:]) for s in kept]
        t += 1
    return Beams(
        tokens=pool_seq[:, :, :t],
        lengths=np.where(pool_rank > NEG_INF, pool_len, 0).astype(np.int32),
        scores=np.where(pool_rank > NEG_INF, pool_score, NEG_INF).astype(np.float32),
        ranking=pool_rank.astype(np.float32),
        step_scores=pool_steps[:, :, :t],
        states=[s[:, 0] for s in pool_states] + list(states[varying:]),
        steps_run=t,
    )
