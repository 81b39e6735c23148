"""What a job's rows have produced so far, between slices, and its answer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.inference.model.interface import States
from service.inference.serving.decoding import Hypothesis, RowDecoded


@dataclass
class Outputs:
    tokens: np.ndarray  # (N, S) int32: each row's chosen tokens
    scores: np.ndarray  # (N, S) float32: their log-probabilities
    probabilities: np.ndarray | None  # (N, S, V) float32, if asked
    lengths: np.ndarray  # (N,) int32: valid steps of each row
    final: States | None  # each row's state after its last step, if kept

    @staticmethod
    def empty(rows: int, steps: int, width: int, probs: bool, final: States | None) -> Outputs:
        return Outputs(
            tokens=np.zeros((rows, steps), np.int32),
            scores=np.zeros((rows, steps), np.float32),
            probabilities=np.zeros((rows, steps, width), np.float32) if probs else None,
            lengths=np.zeros(rows, np.int32),
            final=final,
        )

    def results(self) -> list[RowDecoded]:
        result = []
        probabilities = None if self.probabilities is None else self.probabilities.astype(float)
        for i, n in enumerate(self.lengths.tolist()):
            steps = self.scores[i, :n].astype(float).tolist()
            result.append(
                RowDecoded(
                    [Hypothesis(self.tokens[i, :n].tolist(), float(sum(steps)), steps)],
                    None if probabilities is None else probabilities[i, :n].tolist(),
                    () if self.final is None else tuple(s[i].copy() for s in self.final),
                )
            )
        return result
