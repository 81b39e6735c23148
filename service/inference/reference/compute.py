"""`generate`, `decode`, `run` and beam search as plain Python loops over `encode` and
`step`.

The reference the compiled engine is checked against, and what numpy fakes use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.inference.model.interface import Beams, Decoded, ModelSpec, Sampling, States
from service.inference.reference import sampling as rule
from service.inference.reference.beam import beam_search, log_probs


def _start_ids(spec: ModelSpec, batch: int) -> np.ndarray:
    start = spec.manifest.start_id
    assert start is not None
    return np.full(batch, start, dtype=np.int32)


class ReferenceCompute:
    """Subclasses provide `encode` and `step`; this class loops them. The tests also
    call these methods unbound on a compiled model (`ReferenceCompute.decode(compiled, ...)`),
    so they use only what every `Compute` has, and `spec`."""

    spec: ModelSpec

    def encode(self, sources: np.ndarray) -> States:
        raise NotImplementedError

    def kv_states(self, states: Sequence[np.ndarray]) -> States:
        return list(states)  # no key/value cache

    def prefix_states(self, states: Sequence[np.ndarray]) -> States:
        return list(states)

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        raise NotImplementedError

    def generate(
        self,
        tokens: np.ndarray,
        states: Sequence[np.ndarray],
        limits: np.ndarray,
        probs: bool,
        sampling: Sampling | None = None,
    ) -> Decoded:
        end_token = self.spec.manifest.end_id
        batch = len(tokens)
        limits = np.asarray(limits, dtype=np.int32)
        steps = int(limits.max())
        out = np.zeros((batch, steps), np.int32)
        scores = np.zeros((batch, steps), np.float32)
        all_probs: list[np.ndarray] = []
        lengths = np.zeros(batch, np.int32)
        done = np.zeros(batch, dtype=bool)
        final = [np.array(s, copy=True) for s in states]
        current: Sequence[np.ndarray] = states
        t = 0
        while t < steps and not done.all():
            p, current = self.step(tokens, current)
            if sampling is None:
                tokens = np.argmax(p, axis=-1).astype(np.int32)
            else:
                u = rule.uniform(sampling.seeds, sampling.offsets + t)
                tokens = rule.choose(p, sampling.temperature, sampling.top_k, sampling.top_p, u)
            active = ~done
            out[:, t] = tokens
            scores[:, t] = log_probs(p)[np.arange(batch), tokens]
            all_probs.append(p)
            lengths += active
            for keep, new in zip(final, current, strict=True):
                keep[active] = new[active]
            t += 1
            done |= t >= limits
            if end_token is not None:
                done |= tokens == end_token
        probabilities = np.stack(all_probs, axis=1) if probs else None
        return Decoded(out[:, :t], lengths, probabilities, final, scores[:, :t])

    def decode(
        self,
        sources: np.ndarray,
        limits: np.ndarray,
        probs: bool,
        sampling: Sampling | None = None,
    ) -> Decoded:
        tokens = _start_ids(self.spec, len(sources))
        return self.generate(tokens, self.encode(sources), limits, probs, sampling)

    def beam(
        self,
        tokens: np.ndarray,
        states: Sequence[np.ndarray],
        limits: np.ndarray,
        width: int,
        alpha: np.ndarray,
    ) -> Beams:
        limits = np.asarray(limits, dtype=np.int32)
        end = self.spec.manifest.end_id
        constant = 0 if self.spec.memory_shape is None else 1  # the attention memory
        return beam_search(self.step, tokens, states, limits, width, alpha, end, constant)

    def beam_decode(
        self, sources: np.ndarray, limits: np.ndarray, width: int, alpha: np.ndarray
    ) -> Beams:
        tokens = _start_ids(self.spec, len(sources))
        return self.beam(tokens, self.encode(sources), limits, width, alpha)

    def run(self, tokens: np.ndarray, states: Sequence[np.ndarray], probs: bool) -> Decoded:
        batch, steps = tokens.shape
        out = np.zeros((batch, steps), np.int32)
        scores = np.zeros((batch, steps), np.float32)
        all_probs = []
        current: Sequence[np.ndarray] = states
        for t in range(steps):
            p, current = self.step(tokens[:, t], current)
            out[:, t] = np.argmax(p, axis=-1)
            scores[:, t] = log_probs(p)[np.arange(batch), out[:, t]]
            all_probs.append(p)
        probabilities = np.stack(all_probs, axis=1) if probs else None
        return Decoded(out, np.full(batch, steps, np.int32), probabilities, list(current), scores)
