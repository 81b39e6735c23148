"""The compiled-function table: one `tf.function` per graph a model can run, traced with
an input signature once, when it is first needed (or ahead of that, by the warm-up).

Input signatures leave batch, length and beam width open, so varying requests never
retrace; whether probabilities are returned is a Python-level switch, so it names a
graph of its own ("decode" and "decode_probs").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from service.inference.compiled.cached_steps import CachedSteps
from service.inference.compiled.model_graphs import ModelGraphs
from service.inference.model.interface import ModelSpec

log = logging.getLogger("service")

# What greedy /predict and session steps call (the graphs a model is served with first);
# the loops of every other graph call "step" and "encode" (and, with a key/value cache,
# "cache_build" and "cached_step": CALLEES).
CALLEES = ("step", "encode", "cache_build", "cache_start", "cached_step")
GREEDY = (*CALLEES, "decode", "generate", "run")


def named(kind: str, probs: bool) -> str:
    return f"{kind}_probs" if probs else kind


@dataclass(frozen=True)
class Recipe:
    body: Callable[..., Any]
    signature: list[Any]


def trace(recipe: Recipe, **options: Any) -> tuple[Any, Any]:
    """`recipe` as a `tf.function` and its concrete function. Without AutoGraph: the loops
    are `tf.while_loop`s and nothing here branches on a tensor, and AutoGraph never
    converts a model's own layers anyway (it does not convert what `keras`, `tf_keras` or
    `tensorflow` call, so a layer that branches on a tensor fails in `model.predict`
    too); converting the service's Python cost about a third of a model's load.
    `options`: tf.function's, such as jit_compile."""
    function = tf.function(
        recipe.body, input_signature=recipe.signature, autograph=False, **options
    )
    return function, function.get_concrete_function()


def _bound(fn: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """`fn` with Python-level options fixed: they stay out of the traced signature."""

    def graph(*tensors: Any) -> Any:
        return fn(*tensors, **options)

    return graph


def state_specs(spec: ModelSpec) -> list[Any]:
    """The signature of a batch of states: each state, then the memory if any."""
    states = [tf.TensorSpec([None, *s], tf.float32) for s in spec.state_shapes]
    if spec.memory_shape is not None:
        states.append(tf.TensorSpec([None, *spec.memory_shape], tf.float32))
    return states


def extended_specs(cached: CachedSteps) -> list[Any]:
    """The signature of a batch of states extended by the key/value caches."""
    return [tf.TensorSpec([None, *s], tf.float32) for s in cached.shapes()]


def recipes(graphs: ModelGraphs, spec: ModelSpec, seq2seq: bool) -> dict[str, Recipe]:
    """Every graph of a model by name, "step" and "encode" (their callees) first."""
    tokens = tf.TensorSpec([None], tf.int32)
    matrix = tf.TensorSpec([None, None], tf.int32)
    floats = tf.TensorSpec([None], tf.float32)
    width = tf.TensorSpec([], tf.int32)
    states = state_specs(spec)
    # temperature, top_k, top_p, seeds, offsets
    params = [floats, tokens, floats, tf.TensorSpec([None], tf.uint64), tokens]
    table = {"step": Recipe(graphs.step, [tokens, states])}
    if seq2seq:
        table["encode"] = Recipe(graphs.encode, [matrix])
    if graphs.cached is not None:  # a Transformer decoder's key/value cache
        cached = graphs.cached
        extended = extended_specs(cached)
        table["cache_build"] = Recipe(cached.build, [states])
        table["cache_start"] = Recipe(cached.start, [states])
        table["cached_step"] = Recipe(cached.step, [tokens, extended])
    for probs in (False, True):
        table[named("generate", probs)] = Recipe(
            _bound(graphs.generate, probs=probs), [tokens, states, tokens]
        )
        table[named("sample", probs)] = Recipe(
            _bound(graphs.sample, probs=probs), [tokens, states, tokens, params]
        )
        table[named("run", probs)] = Recipe(_bound(graphs.run, probs=probs), [matrix, states])
        if seq2seq:
            table[named("decode", probs)] = Recipe(
                _bound(graphs.decode, probs=probs), [matrix, tokens]
            )
            table[named("sample_decode", probs)] = Recipe(
                _bound(graphs.decode, probs=probs), [matrix, tokens, params]
            )
    table["beam"] = Recipe(
        _bound(graphs.beam, keep_states=True), [tokens, states, tokens, width, floats]
    )
    if seq2seq:
        table["beam_decode"] = Recipe(graphs.beam_decode, [matrix, tokens, width, floats])
    return table


def kv_recipes(graphs: ModelGraphs) -> dict[str, Recipe]:
    """The "_kv" twins of generate, sample and run: they take the states extended by a
    Transformer decoder's key/value caches ("cache_build" gives them) and return them
    extended, so a session or a streamed decode keeps its caches between calls."""
    assert graphs.cached is not None
    tokens = tf.TensorSpec([None], tf.int32)
    matrix = tf.TensorSpec([None, None], tf.int32)
    floats = tf.TensorSpec([None], tf.float32)
    params = [floats, tokens, floats, tf.TensorSpec([None], tf.uint64), tokens]
    extended = extended_specs(graphs.cached)
    table = {}
    for probs in (False, True):
        table[named("generate_kv", probs)] = Recipe(
            _bound(graphs.generate, probs=probs, kept=True), [tokens, extended, tokens]
        )
        table[named("sample_kv", probs)] = Recipe(
            _bound(graphs.sample, probs=probs, kept=True), [tokens, extended, tokens, params]
        )
        table[named("run_kv", probs)] = Recipe(
            _bound(graphs.run, probs=probs, kept=True), [matrix, extended]
        )
    return table


class Functions:
    """Concrete functions by graph name. Calling a concrete function directly skips
    tf.function's per-call argument matching."""

    def __init__(self, label: str) -> None:
        self._label = label  # for the log: "reverse v1"
        self._recipes: dict[str, Recipe] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._concrete: dict[str, Any] = {}
        self._traced: list[Any] = []

    def define(self, table: dict[str, Recipe]) -> None:
        self._recipes = dict(table)
        self._locks = {name: threading.Lock() for name in table}

    def add(self, table: dict[str, Recipe]) -> None:
        """More graphs (before any request can use this model)."""
        self._recipes.update(table)
        self._locks.update({name: threading.Lock() for name in table})

    def names(self) -> list[str]:
        return list(self._recipes)

    def compiled(self, name: str) -> bool:
        return name in self._concrete

    def __call__(self, name: str) -> Any:
        """The concrete function `name`, traced now if this is its first use."""
        concrete = self._concrete.get(name)
        if concrete is None:
            self.compile(name, first_use=True)
            concrete = self._concrete[name]
        return concrete

    def compile(self, name: str, first_use: bool = False) -> bool:
        """Trace `name` unless it is traced; True if this call traced it. Under the
        graph's own lock: a caller that finds another tracing it waits for that trace
        instead of tracing it again. "step" and "encode" take no other graph's lock, so
        a graph tracing its callees cannot deadlock."""
        with self._locks[name]:
            if name in self._concrete:
                return False
            began = time.perf_counter()
            function, concrete = trace(self._recipes[name])
            self._traced.append(function)
            self._concrete[name] = concrete
        seconds = time.perf_counter() - began
        if first_use:  # a request waited for it: worth a line at the default log level
            log.info("%s: compiled %s on first use in %.2f s", self._label, name, seconds)
        else:
            log.debug("%s: compiled %s in %.2f s", self._label, name, seconds)
        return True

    def trace_count(self) -> int:
        """Total traces so far: must not grow with new batch sizes or lengths."""
        return sum(int(f.experimental_get_tracing_count()) for f in list(self._traced))
