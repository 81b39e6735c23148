"""What the rest of the service knows of a model: a spec and a few numpy functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.inference.manifest import Manifest

States = list[np.ndarray]  # one float32 array per state tensor, shape (batch, *state_shape)


@dataclass
class Decoded:
    """A batch of step results. Row i is valid for its first lengths[i] steps."""

    tokens: np.ndarray  # (batch, steps) int32: the argmax after every step
    lengths: np.ndarray  # (batch,) int32
    probabilities: np.ndarray | None  # (batch, steps, output_cardinality), if asked
    states: States  # each row's state after its last valid step


class Compute(Protocol):
    """Batched model calls. Implementations keep no per-call state."""

    def encode(self, sources: np.ndarray) -> States:
        """int32 sources (batch, length) -> initial decoder states."""
        ...

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        """int32 tokens (batch,) and states -> probabilities (batch, output_card), states."""
        ...

    def generate(
        self, tokens: np.ndarray, states: Sequence[np.ndarray], limits: np.ndarray, probs: bool
    ) -> Decoded:
        """Greedy: feed `tokens`, then each row's argmax, for up to limits[i] steps; a row
        also stops after emitting the end token (included in its output)."""
        ...

    def decode(self, sources: np.ndarray, limits: np.ndarray, probs: bool) -> Decoded:
        """Encode same-length sources, then `generate` from the start token."""
        ...

    def run(self, tokens: np.ndarray, states: Sequence[np.ndarray], probs: bool) -> Decoded:
        """Feed given tokens (batch, steps) one step at a time (teacher forcing)."""
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
