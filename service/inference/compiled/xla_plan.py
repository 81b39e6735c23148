"""Which XLA buckets the warm-up compiles ahead of requests (SERVICE_XLA): the rest
compile when a request first meets them (xla.Xla.want)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from service.inference.compiled import buckets as pad
from service.inference.compiled import xla

if TYPE_CHECKING:
    from service.inference.compiled.keras_model import KerasCompute

Planned = list[tuple[xla.Key, list[Any]]]


def plan(compute: KerasCompute) -> Planned:
    """Greedy first: the whole greedy decode at the manifest's source length (when it
    fixes one) and max_steps, then a session step's run of one value (with a
    Transformer decoder's key/value caches, as sessions carry them), at every batch
    bucket; each with placeholder inputs of its shapes."""
    out: Planned = []
    spec = compute.spec
    manifest = spec.manifest
    shapes = list(spec.state_shapes)
    if spec.memory_shape is not None:
        if None in spec.memory_shape:
            shapes = []  # its length is the source's: unknown ahead
        else:
            shapes.append(tuple(int(d) for d in spec.memory_shape))  # type: ignore[arg-type]
    horizon = pad.bucket(manifest.max_steps, pad.LONGEST_HORIZON)
    for rows in pad.sizes(xla.largest_batch()):
        if compute.seq2seq and manifest.source.length is not None and horizon is not None:
            sources = np.zeros((rows, manifest.source.length), np.int32)
            args: list[Any] = [sources, np.ones(rows, np.int32), pad.carrier(horizon)]
            out.append((xla.key_of("decode", args), args))
    for rows in pad.sizes(xla.largest_batch()):
        if shapes or not compute.seq2seq:
            states = [np.zeros((rows, *s), np.float32) for s in shapes]
            # a Transformer session's step takes its key/value caches along ("run_kv")
            states = compute.kv_states(states)
            name = "run_kv" if compute.extended(states) else "run"
            args = [np.zeros((rows, 1), np.int32), states, np.asarray(1, np.int32)]
            out.append((xla.key_of(name, args), args))
    return out


def probe(compute: KerasCompute) -> tuple[xla.Key, list[Any]]:
    """A small program to try when nothing is planned (SERVICE_XLA=on): a decode of one
    source token, or a run of one value."""
    args: list[Any]
    if compute.seq2seq:
        args = [np.zeros((1, 1), np.int32), np.ones(1, np.int32), pad.carrier(1)]
        return xla.key_of("decode", args), args
    args = [np.zeros((1, 1), np.int32), compute.spec.zero_states(1), np.asarray(1, np.int32)]
    return xla.key_of("run", args), args
