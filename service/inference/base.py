"""What the rest of the service knows of a model: a spec and two numpy functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.inference.manifest import Manifest

States = list[np.ndarray]  # one float32 array per state tensor, shape (batch, *state_shape)


class Compute(Protocol):
    """The two calls decoding needs. Implementations must not keep per-call state."""

    def encode(self, sources: np.ndarray) -> States:
        """int32 sources (batch, length) -> initial decoder states."""
        ...

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        """int32 tokens (batch,) and states -> probabilities (batch, output_cardinality), states."""
        ...


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: int
    manifest: Manifest
    state_shapes: tuple[tuple[int, ...], ...]  # per sample, read from the model

    def zero_states(self, batch: int) -> States:
        return [np.zeros((batch, *shape), dtype=np.float32) for shape in self.state_shapes]


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    compute: Compute
