"""Shape buckets for the XLA graphs: batches padded to a power of two (up to the
batcher's largest batch) and decode lengths to a power-of-two horizon, so a model needs
a few XLA programs, not one per request shape. Pure numpy: what goes in padded, what
comes out cut back.

A padded row is a row of its own (zeros for tokens, sources and states; a limit of one
step; greedy, unseeded sampling parameters): it finishes after its first step, so it never
keeps the loop running, and rows never mix, so the real rows' answers are the unpadded
ones (tokens identical; floats within 1e-5, as between any two batch sizes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from service.inference.model.interface import Beams, Decoded, Sampling

LONGEST_HORIZON = 1024  # SERVICE_MAX_SEQUENCE_LENGTH's default; longer runs stay graphs


def sizes(largest: int) -> list[int]:
    """The batch buckets: 1, 2, 4, ... up to the first power of two >= `largest`."""
    out = [1]
    while out[-1] < largest:
        out.append(out[-1] * 2)
    return out


def bucket(n: int, largest: int) -> int | None:
    """The smallest power of two >= n (at least 1); None beyond `largest`'s bucket."""
    size = 1
    while size < n:
        size *= 2
    return size if size <= sizes(largest)[-1] else None


def rows(values: np.ndarray, to: int, fill: float | int = 0) -> np.ndarray:
    """`values` with rows of `fill` appended up to `to` rows."""
    extra = to - values.shape[0]
    if extra <= 0:
        return values
    pad = np.full((extra, *values.shape[1:]), fill, dtype=values.dtype)
    return np.concatenate([values, pad])


def states(values: Sequence[np.ndarray], to: int) -> list[np.ndarray]:
    return [rows(np.asarray(s, np.float32), to) for s in values]


def limits(values: np.ndarray, to: int) -> np.ndarray:
    return rows(np.asarray(values, np.int32), to, 1)


def columns(values: np.ndarray, to: int) -> np.ndarray:
    """A (batch, steps) matrix padded with zero columns to `to` steps."""
    extra = to - values.shape[1]
    if extra <= 0:
        return values
    return np.concatenate([values, np.zeros((values.shape[0], extra), values.dtype)], axis=1)


def sampling(values: Sampling, to: int) -> Sampling:
    """Padded rows: temperature 0 (argmax), no top-k, top-p 1, stream 0."""
    return Sampling(
        temperature=rows(values.temperature, to, 0.0),
        top_k=rows(values.top_k, to, 0),
        top_p=rows(values.top_p, to, 1.0),
        seeds=rows(values.seeds, to, 0),
        offsets=rows(values.offsets, to, 0),
    )


def carrier(size: int) -> np.ndarray:
    """An int32 vector whose length, not its contents, tells XLA a size."""
    return np.zeros(size, np.int32)


def cut_decoded(decoded: Decoded, batch: int, steps: int) -> Decoded:
    """The first `batch` rows and `steps` steps of a padded result."""
    probs = decoded.probabilities
    scores = decoded.scores
    return Decoded(
        tokens=decoded.tokens[:batch, :steps],
        lengths=decoded.lengths[:batch],
        probabilities=None if probs is None else probs[:batch, :steps],
        states=[s[:batch] for s in decoded.states],
        scores=None if scores is None else scores[:batch, :steps],
    )


def cut_beams(beams: Beams, batch: int) -> Beams:
    steps = beams.steps_run
    return replace(
        beams,
        tokens=beams.tokens[:batch, :, :steps],
        lengths=beams.lengths[:batch],
        scores=beams.scores[:batch],
        ranking=beams.ranking[:batch],
        step_scores=beams.step_scores[:batch, :, :steps],
        states=[s[:batch] for s in beams.states],
    )
