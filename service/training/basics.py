"""Shared training plumbing: seeding, one-hot data, saving a model version."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any

import numpy as np


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def one_hot(tokens: np.ndarray, cardinality: int) -> np.ndarray:
    encoded: np.ndarray = np.eye(cardinality, dtype=np.float32)[tokens]
    return encoded


def environment() -> dict[str, Any]:
    import keras
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save_models(out: Path, models: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for filename, model in models.items():
        model.save(out / filename)
