"""numpy arrays in, tensors to the compiled functions; their results back to numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from service.inference.model.interface import Beams, Decoded, Sampling


def ints(values: np.ndarray | int) -> tf.Tensor:
    return tf.constant(values, tf.int32)


def floats(values: np.ndarray) -> tf.Tensor:
    return tf.constant(values, tf.float32)


def states(values: Sequence[np.ndarray]) -> list[tf.Tensor]:
    return [tf.constant(s, tf.float32) for s in values]


def params(sampling: Sampling) -> list[tf.Tensor]:
    """In the order the sampling graphs take them (functions.recipes)."""
    return [
        tf.constant(sampling.temperature, tf.float32),
        tf.constant(sampling.top_k, tf.int32),
        tf.constant(sampling.top_p, tf.float32),
        tf.constant(sampling.seeds, tf.uint64),
        tf.constant(sampling.offsets, tf.int32),
    ]


def decoded(result: dict[str, Any], batch: int, steps: int | None = None) -> Decoded:
    """A generate, decode or run result; `steps`: a run's (it returns no lengths)."""
    tokens = result["tokens"].numpy()
    lengths = result["lengths"].numpy() if "lengths" in result else np.full(batch, steps, np.int32)
    probs = result["probs"].numpy() if "probs" in result else None
    kept = [s.numpy() for s in result.get("states", ())]
    return Decoded(tokens, lengths, probs, kept, result["scores"].numpy())


def beams(result: dict[str, Any]) -> Beams:
    return Beams(
        tokens=result["tokens"].numpy(),
        lengths=result["lengths"].numpy(),
        scores=result["scores"].numpy(),
        ranking=result["ranking"].numpy(),
        step_scores=result["step_scores"].numpy(),
        states=[s.numpy() for s in result.get("states", ())],
        steps_run=int(result["steps_run"]),
    )
