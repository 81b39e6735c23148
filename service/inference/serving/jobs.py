"""A batcher's jobs: what they carry (a predict's sources, a session's generate or
run), the queued job itself, the answer of a job with more to do, the counters."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.inference.model.interface import Decoding

Carried = tuple[np.ndarray, ...]  # one session's states (and memory, last)


@dataclass(frozen=True)
class PredictJob:
    sequences: list[list[int]]
    max_steps: int
    decoding: list[Decoding]  # one per sequence, all in one group
    wanted: list[int] | None = None  # beam: hypotheses per sequence


@dataclass(frozen=True)
class GenerateJob:
    states: Carried
    token: int
    max_steps: int
    decoding: Decoding
    wanted: int = 1  # beam: hypotheses


@dataclass(frozen=True)
class RunJob:
    states: Carried
    tokens: list[int]


@dataclass(frozen=True)
class Continue:
    """A job's answer when it has more to do: run `payload` (now `rows` rows) again in
    the next iteration."""

    payload: Any
    rows: int


@dataclass
class Job:
    key: Hashable
    rows: int
    payload: Any
    future: asyncio.Future[Any] = field(repr=False)
    queued_at: float = 0.0  # time.perf_counter() at submit
    owner: str = ""


@dataclass
class BatchStats:
    batches: int = 0  # compute trips (iterations)
    jobs: int = 0
    rows: int = 0
    largest: int = 0
