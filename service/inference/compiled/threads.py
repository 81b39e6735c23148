"""TensorFlow's thread pools."""

from __future__ import annotations

import tensorflow as tf


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Set TF thread pools; only effective before TF runs its first op (0 = TF default)."""
    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:  # already initialised (e.g. a second app in one process)
        pass
