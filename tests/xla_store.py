"""A model XLA cannot compile, for the SERVICE_XLA tests: a step model saved as a TF
SavedModel whose step converts a tensor to strings and back (`AsString` has no XLA
kernel); what it computes is `expected_outputs` in numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

UNITS, CARD = 4, 5


def weights() -> np.ndarray:
    return np.random.default_rng(3).normal(0, 0.5, (CARD + UNITS, UNITS + CARD)).astype(np.float32)


def write(root: Path) -> Path:
    """root/noxla/1: the SavedModel and its manifest; returns root (a model store)."""
    import tensorflow as tf

    class Step(tf.Module):
        def __init__(self) -> None:
            self.w = tf.Variable(weights())

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 1, CARD], tf.float32, name="token"),
                tf.TensorSpec([None, UNITS], tf.float32, name="h"),
            ]
        )
        def __call__(self, token: tf.Tensor, h: tf.Tensor) -> dict[str, tf.Tensor]:
            z = tf.concat([token[:, 0, :], h], 1) @ self.w
            one = tf.strings.to_number(tf.strings.as_string(tf.ones_like(h[:, :1])))
            return {"h": tf.tanh(z[:, :UNITS]), "probs": tf.nn.softmax(z[:, UNITS:]) * one}

    directory = root / "noxla" / "1"
    directory.mkdir(parents=True)
    tf.saved_model.save(Step(), str(directory / "step"))
    manifest = {
        "kind": "step",
        "input": {"encoding": "one_hot", "cardinality": CARD},
        "output_cardinality": CARD,
        "max_steps": 4,
    }
    (directory / "model.json").write_text(json.dumps(manifest))
    return root


def expected_outputs(values: list[int]) -> list[int]:
    """The argmax after each value, from a zero state."""
    w, h, out = weights(), np.zeros(UNITS, np.float32), []
    for value in values:
        z = np.concatenate([np.eye(CARD, dtype=np.float32)[value], h]) @ w
        h = np.tanh(z[:UNITS])
        out.append(int(np.argmax(z[UNITS:])))
    return out
