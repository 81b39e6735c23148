"""What a batcher's jobs carry: a predict's sources, a session's generate or steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.inference.model.interface import Decoding

Session = tuple[np.ndarray, ...]  # one session's states (and memory, last)


@dataclass(frozen=True)
class PredictJob:
    sequences: list[list[int]]
    max_steps: int
    decoding: list[Decoding]  # one per sequence, all in one group
    wanted: list[int] | None = None  # beam: hypotheses per sequence


@dataclass(frozen=True)
class GenerateJob:
    states: Session
    token: int
    max_steps: int
    decoding: Decoding
    wanted: int = 1  # beam: hypotheses


@dataclass(frozen=True)
class RunJob:
    states: Session
    tokens: list[int]
