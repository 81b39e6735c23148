"""The XLA twins of functions.recipes: the same graph bodies, traced with
`jit_compile=True`.

XLA compiles one program per concrete input shape, and every shape in it must be a
compile-time constant. So what the graph path reads from values (the longest limit, the
beam width) comes in here as the length of a "carrier" (an int32 vector whose contents
are ignored): the horizon (how many steps the results have room for, at least the
longest limit) and the beam width. buckets.py pads batches and horizons to a few sizes,
so a model has a few programs, not one per request shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from service.inference.compiled.functions import Recipe, extended_specs, named, state_specs
from service.inference.compiled.model_graphs import ModelGraphs
from service.inference.model.interface import ModelSpec


def _size(carrier: tf.Tensor) -> tf.Tensor:
    return tf.shape(carrier)[0]


def _generate(graphs: ModelGraphs, probs: bool, kept: bool = False) -> Callable[..., Any]:
    def graph(tokens: Any, states: Any, limits: Any, horizon: Any) -> Any:
        return graphs.generate(tokens, states, limits, probs, horizon=_size(horizon), kept=kept)

    return graph


def _sample(graphs: ModelGraphs, probs: bool, kept: bool = False) -> Callable[..., Any]:
    def graph(tokens: Any, states: Any, limits: Any, horizon: Any, params: Any) -> Any:
        return graphs.sample(tokens, states, limits, params, probs, _size(horizon), kept=kept)

    return graph


def _decode(graphs: ModelGraphs, probs: bool, sampled: bool) -> Callable[..., Any]:
    def graph(sources: Any, limits: Any, horizon: Any, *params: Any) -> Any:
        chosen = params[0] if sampled else None
        return graphs.decode(sources, limits, chosen, probs=probs, horizon=_size(horizon))

    return graph


def _run(graphs: ModelGraphs, probs: bool, kept: bool = False) -> Callable[..., Any]:
    def graph(tokens: Any, states: Any, steps: Any) -> Any:
        return graphs.run(tokens, states, probs, steps, kept)

    return graph


def xla_recipes(graphs: ModelGraphs, spec: ModelSpec, seq2seq: bool) -> dict[str, Recipe]:
    """Every graph of functions.recipes by the same name, with carriers for its shapes:
    generate/sample/decode take a horizon carrier after the limits; run takes its tokens
    padded to a horizon and the steps to run; beam takes carriers for width and horizon."""
    tokens = tf.TensorSpec([None], tf.int32)
    matrix = tf.TensorSpec([None, None], tf.int32)
    floats = tf.TensorSpec([None], tf.float32)
    carrier = tf.TensorSpec([None], tf.int32)
    scalar = tf.TensorSpec([], tf.int32)
    states = state_specs(spec)
    params = [floats, tokens, floats, tf.TensorSpec([None], tf.uint64), tokens]
    table = {"step": Recipe(graphs.step, [tokens, states])}
    if seq2seq:
        table["encode"] = Recipe(graphs.encode, [matrix])
    for probs in (False, True):
        table[named("generate", probs)] = Recipe(
            _generate(graphs, probs), [tokens, states, tokens, carrier]
        )
        table[named("sample", probs)] = Recipe(
            _sample(graphs, probs), [tokens, states, tokens, carrier, params]
        )
        table[named("run", probs)] = Recipe(_run(graphs, probs), [matrix, states, scalar])
        if seq2seq:
            table[named("decode", probs)] = Recipe(
                _decode(graphs, probs, False), [matrix, tokens, carrier]
            )
            table[named("sample_decode", probs)] = Recipe(
                _decode(graphs, probs, True), [matrix, tokens, carrier, params]
            )

    def beam(tokens: Any, states: Any, limits: Any, width: Any, alpha: Any, horizon: Any) -> Any:
        return graphs.beam(tokens, states, limits, _size(width), alpha, True, _size(horizon))

    def beam_decode(sources: Any, limits: Any, width: Any, alpha: Any, horizon: Any) -> Any:
        return graphs.beam_decode(sources, limits, _size(width), alpha, _size(horizon))

    table["beam"] = Recipe(beam, [tokens, states, tokens, carrier, floats, carrier])
    if seq2seq:
        table["beam_decode"] = Recipe(beam_decode, [matrix, tokens, carrier, floats, carrier])
    if graphs.cached is not None and graphs.keep:  # functions.kv_recipes' twins
        extended = extended_specs(graphs.cached)
        for probs in (False, True):
            table[named("generate_kv", probs)] = Recipe(
                _generate(graphs, probs, True), [tokens, extended, tokens, carrier]
            )
            table[named("sample_kv", probs)] = Recipe(
                _sample(graphs, probs, True), [tokens, extended, tokens, carrier, params]
            )
            table[named("run_kv", probs)] = Recipe(
                _run(graphs, probs, True), [matrix, extended, scalar]
            )
    return table
