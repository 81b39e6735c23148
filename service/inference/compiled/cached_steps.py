"""A Transformer decoder's steps with a key/value cache (the chain of KerasHub layers
kv_cache.py re-composes), as compiled functions of their own: "cache_build" (from a
prefix, one pass), "cache_start" (from a memory alone) and "cached_step". A loop starts
from prefix states (transformer_step.py says what those carry) extended by the caches,
built in the call, or from extended states given (the "_kv" graphs), and generate and
run give back the extended states (unless `configure(False)`): a session's caches are
kept between its requests (service/dataplane/kv_sessions.py), a streamed decode's
between its steps. Beam search gives back prefix states."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from service.inference.compiled import kv_cache, transformer_step
from service.inference.compiled.graphs import loops
from service.inference.model.interface import ModelSpec
from service.inference.model.layout import Layout

Result = dict[str, Any]

# generate and run give back the states extended by the caches, for a session's next
# request (SERVICE_SESSION_KV_CACHE_MB > 0); else prefix states, as beam search does
_keep = True


def configure(keep: bool) -> None:
    global _keep
    _keep = keep


def keeping() -> bool:
    return _keep


class CachedSteps:
    def __init__(
        self,
        chain: kv_cache.Chain,
        spec: ModelSpec,
        layout: Layout,
        logits: bool,
        compiled: Callable[[str], Any],
    ):
        assert layout.window is not None
        self.chain = chain
        self.spec = spec
        self.window = layout.window
        self._logits = logits
        self._compiled = compiled

    def stepper(self, states: list[tf.Tensor], fresh: bool) -> tuple[loops.Step, list[tf.Tensor]]:
        """The cached step and its states: prefix `states` extended by every layer's
        caches, built in one pass, or from `fresh` states (just encoded, no token fed)
        started from the memory alone."""
        build = "cache_start" if fresh else "cache_build"
        return self.step_call, list(self._compiled(build)(states))

    def step_call(self, tokens: tf.Tensor, carried: list[tf.Tensor]) -> list[tf.Tensor]:
        return list(self._compiled("cached_step")(tokens, carried))

    def build(self, states: list[tf.Tensor]) -> list[tf.Tensor]:
        """Prefix states -> [tokens so far, position, *self caches, memory, *cross caches]
        (the cross-attention caches last: constant, as the memory is, in beam search)."""
        so_far, position, memory = states
        with transformer_step.masks_handled():
            caches = kv_cache.build(self.chain, so_far, memory[..., -1] > 0.5, memory[..., :-1])
        return [so_far, position, *caches[0::2], memory, *caches[1::2]]

    def start(self, states: list[tf.Tensor]) -> list[tf.Tensor]:
        """build's answer for states no token was fed to yet: no self-attention key or
        value to compute (each step writes its own before any is read), the
        cross-attention ones from the memory alone."""
        so_far, position, memory = states
        with transformer_step.masks_handled():
            selfs, crosses = kv_cache.start(self.chain, so_far, memory[..., :-1])
        return [so_far, position, *selfs, memory, *crosses]

    def step(self, tokens: tf.Tensor, carried: list[tf.Tensor]) -> list[tf.Tensor]:
        """[probabilities, *the extended states after feeding `tokens`]."""
        n, window = self.chain.caches, self.window
        so_far, position, memory = carried[0], carried[1], carried[2 + n]
        selfs, crosses = carried[2 : 2 + n], carried[3 + n :]
        at = tf.cast(position[:, 0], tf.int32)
        here = tf.one_hot(at, window, dtype=tf.float32)  # all zeros once at >= window
        so_far = so_far * (1.0 - here) + tf.cast(tokens, tf.float32)[:, None] * here
        caches = [c for pair in zip(selfs, crosses, strict=True) for c in pair]
        with transformer_step.masks_handled():
            out, caches = kv_cache.step(
                self.chain,
                tokens,
                so_far,
                tf.minimum(at, window - 1),
                memory[..., -1] > 0.5,
                caches,
            )
        probs = tf.cast(out, tf.float32)
        if self._logits:
            probs = tf.nn.softmax(probs, axis=-1)
        return [probs, so_far, position + 1.0, *caches[0::2], memory, *caches[1::2]]

    def shapes(self) -> list[tuple[int | None, ...]]:
        """Per sample: the extended states build returns."""
        assert self.spec.memory_shape is not None
        source = self.spec.memory_shape[0]
        selfs, crosses = [], []
        for layer in self.chain.decoders:
            h, d = kv_cache.heads(layer._self_attention_layer)
            selfs.append((2, self.window, h, d))
            h, d = kv_cache.heads(layer._cross_attention_layer)
            crosses.append((2, source, h, d))
        return [*self.spec.state_shapes, *selfs, self.spec.memory_shape, *crosses]

    def uncached(self, result: Result) -> Result:
        """Prefix states again (beam search)."""
        if "states" in result:
            extended = result["states"]
            result["states"] = [extended[0], extended[1], extended[2 + self.chain.caches]]
        return result

    def verify(
        self, encode: Callable[[tf.Tensor], Any], step: Callable[[tf.Tensor, Any], Any]
    ) -> str:
        """The cached steps (caches built, and started) against prefix mode's `step` on
        every position of the window, through the compiled functions: "" if they agree
        within 1e-5, else why not."""
        rng = np.random.default_rng(0)
        source = self.spec.manifest.source
        sources = tf.constant(rng.integers(1, source.size, (2, source.length or 4)), tf.int32)
        card = self.spec.manifest.output_cardinality
        # id 0 too (a decoder whose embedding masks it must mask it in the cache as well),
        # but not first: a real prefix starts with the start token, and a query that sees
        # no key at all is answered differently by every attention implementation
        tokens = rng.integers(0, card, (2, self.window)).astype(np.int32)
        tokens[:, 0] = rng.integers(1, card, 2)
        worst = 0.0
        try:
            plain = list(encode(sources))
            built = list(self._compiled("cache_build")(plain))
            started = list(self._compiled("cache_start")(plain))
            for t in range(self.window):
                token = tf.constant(tokens[:, t])
                a, *plain = step(token, plain)
                b, *built = self.step_call(token, built)
                c, *started = self.step_call(token, started)
                for cached in (b, c):
                    worst = max(worst, float(tf.reduce_max(tf.abs(a - cached))))
        except Exception as exc:  # noqa: BLE001 - any failure means: no cache
            return f"the cached step failed: {exc!s:.200}"
        if not worst <= 1e-5:
            return f"the cached step differs from the decoder by {worst:.2g}"
        return ""
