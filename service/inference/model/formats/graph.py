"""What every file format loader returns: a callable graph with ordered, described
inputs and outputs. Imports TensorFlow (only inference/ may)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import tensorflow as tf


@dataclass(frozen=True)
class TensorInfo:
    name: str  # the Keras input/output name, or the SavedModel signature key
    shape: tuple[int | None, ...]  # batch dimension included (None)
    dtype: str  # "float32", "int32", "int64", ...


class Graph(Protocol):
    """One loaded model (encoder, decoder or step model) in its own input/output order."""

    @property
    def inputs(self) -> Sequence[TensorInfo]: ...

    @property
    def outputs(self) -> Sequence[TensorInfo]: ...

    def __call__(
        self, inputs: Sequence[tf.Tensor], masks: Sequence[tf.Tensor | None] | None = None
    ) -> list[tf.Tensor]:
        """Call in inference mode, usable inside a `tf.function`; tensors in the order of
        `inputs` and `outputs`. `masks`: a Keras mask per input (or None), where the
        format can take them."""
        ...

    def single_step(self) -> None:
        """Hint: the graph will only ever be called on one time step (a decoder); a Keras
        model unrolls its recurrent layers. May do nothing."""
        ...
