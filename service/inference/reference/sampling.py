"""Sampling's rule in numpy: the reference the compiled graph (graphs/sample.py) follows
operation for operation.

Randomness is counter-based, not a generator's state: the uniform number a row draws at
step t is a hash of (the row's seed, t). So a row's draws depend on nothing else in its
batch, and a decode cut into pieces (a stream, or session generate calls) continues
the same stream when each piece starts at its offset.
"""

from __future__ import annotations

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)
ROW = np.uint64(0xD1B54A32D192ED03)
TINY = np.float32(1e-30)  # probabilities are floored here before the log


def mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: uint64 -> well-mixed uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * MIX_1
        x = (x ^ (x >> np.uint64(27))) * MIX_2
        mixed: np.ndarray = x ^ (x >> np.uint64(31))
        return mixed


def row_seeds(seed: int, rows: int) -> np.ndarray:
    """Row i of a request with `seed` draws from stream row_seeds(seed, n)[i] (the same
    for any n > i)."""
    index = np.arange(1, rows + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return mix(np.uint64(seed) + index * ROW)


def uniform(seeds: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """One float32 in [0, 1) per row, on a 2**-24 grid (exact in float32)."""
    with np.errstate(over="ignore"):
        bits = mix(seeds + (steps.astype(np.uint64) + np.uint64(1)) * GOLDEN)
    return (bits >> np.uint64(40)).astype(np.float32) / np.float32(2**24)


def choose(
    probs: np.ndarray,
    temperature: np.ndarray,
    top_k: np.ndarray,
    top_p: np.ndarray,
    u: np.ndarray,
) -> np.ndarray:
    """probs (batch, V) -> one token per row: argmax where temperature is 0; otherwise
    draw from softmax(log(p) / temperature), kept to the top_k most probable tokens
    (0: all) and to the smallest most-probable set reaching top_p."""
    batch, vocab = probs.shape
    logp = np.log(np.maximum(probs, TINY))
    safe = np.where(temperature > 0, temperature, np.float32(1)).astype(np.float32)
    z = logp / safe[:, None]
    q = np.exp(z - z.max(axis=1, keepdims=True))
    q = q / q.sum(axis=1, keepdims=True)
    order = np.argsort(-q, axis=1, kind="stable")
    ranked = np.take_along_axis(q, order, axis=1)
    before = np.cumsum(ranked, axis=1) - ranked  # probability of the better tokens
    k = np.where(top_k > 0, top_k, vocab)
    # the most probable token always stays: a top_p too small for float32 (1e-40 is 0
    # once denormals flush) must not empty the nucleus
    keep = (np.arange(vocab)[None, :] < k[:, None]) & (before < top_p[:, None])
    keep[:, 0] = True
    weights = np.where(keep, ranked, np.float32(0))
    target = u * weights.sum(axis=1)
    position = (np.cumsum(weights, axis=1) <= target[:, None]).sum(axis=1)
    position = np.minimum(position, keep.sum(axis=1) - 1)
    drawn = order[np.arange(batch), position]
    chosen: np.ndarray = np.where(temperature > 0, drawn, probs.argmax(axis=1))
    return chosen.astype(np.int32)
