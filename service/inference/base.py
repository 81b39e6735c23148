"""What the rest of the service knows of a model: a spec and a few numpy functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.inference.manifest import Manifest

# One float32 array per state tensor, shape (batch, *state_shape). For a model with
# attention, the encoder's memory (batch, time, units) comes last: it is carried through
# every step unchanged, like a state the decoder never updates.
States = list[np.ndarray]


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
    memory_shape: tuple[int | None, ...] | None = None  # per sample (time, units), if any

    def zero_states(self, batch: int) -> States:
        """Recurrent states only (no memory)."""
        return [np.zeros((batch, *shape), dtype=np.float32) for shape in self.state_shapes]

    def memory_fits(self, memory: np.ndarray | None) -> bool:
        if self.memory_shape is None or memory is None:
            return self.memory_shape is None and memory is None
        return memory.ndim == len(self.memory_shape) and all(
            want is None or want == got
            for want, got in zip(self.memory_shape, memory.shape, strict=True)
        )


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    compute: Compute
    load_seconds: float | None = None  # reading, compiling and warming up its files
