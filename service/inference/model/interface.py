"""What the rest of the service knows of a model: a spec and a few numpy functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from service.inference.model.manifest import Manifest

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
    scores: np.ndarray | None = None  # (batch, steps) float32: log-probability of each token


@dataclass
class Beams:
    """Beam search results: per row, `width` hypotheses, best first (by `ranking`).
    Hypothesis j of row i is tokens[i, j, :lengths[i, j]]; a hypothesis that does not
    exist (fewer than `width` were possible) has score -inf and length 0."""

    tokens: np.ndarray  # (batch, width, steps) int32
    lengths: np.ndarray  # (batch, width) int32
    scores: np.ndarray  # (batch, width) float32: log-probability
    ranking: np.ndarray  # (batch, width) float32: scores / length penalty
    step_scores: np.ndarray  # (batch, width, steps) float32
    states: States  # each row's best hypothesis's state after its last token
    steps_run: int  # decoder steps of the whole batch (each over batch x width rows)


@dataclass(frozen=True)
class Sampling:
    """Per-row sampling parameters (arrays of the batch's length); see sampling.py."""

    temperature: np.ndarray  # float32; 0: argmax
    top_k: np.ndarray  # int32; 0: every token
    top_p: np.ndarray  # float32; 1: every token
    seeds: np.ndarray  # uint64: the row's random stream
    offsets: np.ndarray  # int32: the stream position of the row's first step


@dataclass(frozen=True)
class Decoding:
    """How one row is decoded. Rows batch together when their `group` is equal."""

    strategy: Literal["greedy", "beam", "sample"] = "greedy"
    beam_width: int = 1
    length_penalty: float = 0.0
    temperature: float = 1.0  # sample; 0: argmax
    top_k: int = 0  # sample; 0: every token
    top_p: float = 1.0  # sample
    seed: int = 0  # sample: the row's stream (sampling.row_seeds)
    offset: int = 0  # sample: the stream position of the row's first step

    @property
    def group(self) -> tuple[str, int]:
        """Beam rows share a graph call only with the same width (it shapes the call)."""
        return self.strategy, self.beam_width if self.strategy == "beam" else 0


GREEDY = Decoding()


class Compute(Protocol):
    """Batched model calls. Implementations keep no per-call state."""

    def encode(self, sources: np.ndarray) -> States:
        """int32 sources (batch, length) -> initial decoder states."""
        ...

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        """int32 tokens (batch,) and states -> probabilities (batch, output_card), states."""
        ...

    def generate(
        self,
        tokens: np.ndarray,
        states: Sequence[np.ndarray],
        limits: np.ndarray,
        probs: bool,
        sampling: Sampling | None = None,
    ) -> Decoded:
        """Greedy (or sampled): feed `tokens`, then each row's chosen token, for up to
        limits[i] steps; a row also stops after emitting the end token (included)."""
        ...

    def decode(
        self,
        sources: np.ndarray,
        limits: np.ndarray,
        probs: bool,
        sampling: Sampling | None = None,
    ) -> Decoded:
        """Encode same-length sources, then `generate` from the start token."""
        ...

    def beam(
        self,
        tokens: np.ndarray,
        states: Sequence[np.ndarray],
        limits: np.ndarray,
        width: int,
        alpha: np.ndarray,
    ) -> Beams:
        """Beam search from `tokens` and `states`, up to limits[i] steps per row, ranking
        hypotheses by log-probability / ((5 + length) / 6) ** alpha[i]."""
        ...

    def beam_decode(
        self, sources: np.ndarray, limits: np.ndarray, width: int, alpha: np.ndarray
    ) -> Beams:
        """Encode same-length sources, then `beam` from the start token."""
        ...

    def run(self, tokens: np.ndarray, states: Sequence[np.ndarray], probs: bool) -> Decoded:
        """Feed given tokens (batch, steps) one step at a time (teacher forcing)."""
        ...

    def kv_states(self, states: Sequence[np.ndarray]) -> States:
        """States extended by a Transformer decoder's key/value caches. With such a cache
        `generate` and `run` give back extended states, and take them (then the caches
        are not built again from the prefix) as well as prefix states; `beam` takes
        prefix states. Without a cache, or extended already: as they are."""
        ...

    def prefix_states(self, states: Sequence[np.ndarray]) -> States:
        """kv_states undone."""
        ...


@dataclass(frozen=True)
class Compilation:
    """A compiled model's XLA programs (SERVICE_XLA), when XLA runs it: the batch
    buckets, and by graph name the batch sizes compiled and queued."""

    batch_sizes: list[int]
    ready: dict[str, list[int]]
    pending: dict[str, list[int]]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: int
    manifest: Manifest
    state_shapes: tuple[tuple[int, ...], ...]  # per sample, read from the model
    memory_shape: tuple[int | None, ...] | None = None  # per sample (time, units), if any
    window: int | None = None  # a Transformer decoder: the target positions it reads

    def room(self, states: Sequence[np.ndarray]) -> int | None:
        """How many more tokens a Transformer decoder can be fed from one row's `states`
        (None: no bound, a recurrent decoder)."""
        if self.window is None:
            return None
        return self.window - int(states[1].reshape(-1)[0])

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
