"""Split a Keras Transformer training model `[encoder_inputs, decoder_inputs] ->
probabilities` into the encoder `encoder_inputs -> encoder_outputs` and the decoder
`[decoder_inputs, encoder_outputs] -> probabilities`. The decoder is either a nested model
the training model calls on `[decoder_inputs, encoder_outputs]` (or the other order), as
keras-io's Transformer examples build it, kept as it is; or a chain of layers in the
training model itself, re-composed from its layers (shared weights) with the memory as a
new input: the one tensor computed from the encoder's input alone that a layer also
reached from the decoder's input consumes (the cross-attention's `encoder_sequence`).

The split is checked as the service runs it (compiled/loader.build_model: the source mask
carried to the decoder, cached or prefix mode), teacher-forced over the whole window
against the training model, because a decoder called on a bare memory tensor attends to
padded source positions the trained model ignored."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from service.tools.split import SplitError

EXPECTED = (
    "expected a functional model [encoder_inputs, decoder_inputs] -> probabilities whose "
    "decoder is a nested model called on [decoder_inputs, encoder_outputs] (or "
    "[encoder_outputs, decoder_inputs]) or a chain of layers whose cross-attention reads "
    "one encoder output, as keras-io's Transformer examples build them"
)


def split_transformer(model: Any) -> tuple[keras.Model, keras.Model]:
    """`(encoder, decoder)` sharing `model`'s layers and weights; SplitError says why not."""
    if not isinstance(model, keras.Model) or len(model.inputs) != 2 or len(model.outputs) != 1:
        raise SplitError(f"{model.name}: {EXPECTED}")
    nested = _nested(model)
    if nested is not None:
        decoder, source, memory = nested
    else:
        source, target = model.inputs  # the order the issue and keras-io give them
        memory = _memory(model, source, target)
        decoder = keras.Model([target, memory], model.outputs[0], name=f"{model.name}_decoder")
    if id(source) not in {id(t) for t in _sources(memory)}:
        raise SplitError(f"{model.name}: the decoder's memory does not come from the source")
    encoder = keras.Model(source, memory, name=f"{model.name}_encoder")
    return encoder, decoder


def _nested(model: Any) -> tuple[Any, Any, Any] | None:
    """(decoder, source input, memory) for a decoder model nested in `model`, else None."""
    inputs = {id(t): i for i, t in enumerate(model.inputs)}
    found = []
    for layer in model.layers:
        if not isinstance(layer, keras.Model) or len(layer.inputs) != 2:
            continue
        for node in layer._inbound_nodes:
            tensors = keras.tree.flatten(node.arguments.args)
            if len(tensors) == 2 and sum(id(t) in inputs for t in tensors) == 1:
                found.append((layer, tensors))
    if not found:
        return None
    if len(found) != 1:
        raise SplitError(f"{model.name}: {len(found)} nested decoders found; {EXPECTED}")
    decoder, tensors = found[0]
    token_at = 0 if id(tensors[0]) in inputs else 1
    memory = tensors[1 - token_at]
    source = model.inputs[1 - inputs[id(tensors[token_at])]]
    return decoder, source, memory


def _memory(model: Any, source: Any, target: Any) -> Any:
    """The one tensor computed from `source` alone that an operation also reached from
    `target` reads: what the encoder hands the decoder."""
    reach: dict[int, frozenset[str]] = {id(source): frozenset({"s"}), id(target): frozenset({"t"})}

    def reached(tensor: Any) -> frozenset[str]:
        if id(tensor) not in reach:
            reach[id(tensor)] = frozenset().union(*(reached(p) for p in _parents(tensor)))
        return reach[id(tensor)]

    found: dict[int, Any] = {}
    seen: set[int] = set()
    stack = list(model.outputs)
    while stack:
        tensor = stack.pop()
        if id(tensor) in seen or tensor is source or tensor is target:
            continue
        seen.add(id(tensor))
        parents = _parents(tensor)
        if any("t" in reached(p) for p in parents):
            found.update((id(p), p) for p in parents if reached(p) == {"s"})
        stack.extend(parents)
    if len(found) != 1:
        raise SplitError(
            f"{model.name}: {len(found)} tensors pass from the encoder's input to the "
            f"decoder's layers (one expected: the memory); {EXPECTED}"
        )
    return next(iter(found.values()))


def _parents(tensor: Any) -> list[Any]:
    """The Keras tensors the operation that made `tensor` was called on."""
    operation, node_index, _ = tensor._keras_history
    node = operation._inbound_nodes[node_index]
    flat = keras.tree.flatten((node.arguments.args, node.arguments.kwargs))
    return [p for p in flat if isinstance(p, keras.KerasTensor)]


def _sources(tensor: Any) -> list[Any]:
    """The model inputs a tensor is computed from (Keras history walked back)."""
    seen, stack, found = set(), [tensor], []
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        parents = _parents(t)
        if not parents:
            found.append(t)
        stack.extend(parents)
    return found


def served_difference(
    training: Any, encoder: Any, decoder: Any, manifest: Any, rows: int = 8
) -> float:
    """Max |training model - the split as served, teacher-forced over the window| on random
    sources with padding (id 0) at their ends and random target tokens."""
    from service.inference.compiled.loader import build_model
    from service.inference.model.formats.keras_file import KerasGraph

    model = build_model(
        "import", 1, manifest, KerasGraph(encoder), KerasGraph(decoder), warm_up=False
    )
    rng = np.random.default_rng(0)
    length = manifest.source.length or 12
    sources = rng.integers(1, manifest.source.size, (rows, length)).astype(np.int32)
    for row in range(rows):
        sources[row, rng.integers(1, length + 1) :] = 0
    window = model.spec.window
    assert window is not None
    targets = rng.integers(1, manifest.target.size, (rows, window)).astype(np.int32)
    states = model.compute.encode(sources)
    served = model.compute.run(targets, states, True).probabilities
    feeds: list[Any] = [None, None]
    feeds[_source_index(training, encoder)] = sources
    feeds[1 - _source_index(training, encoder)] = targets
    expected = keras.ops.convert_to_numpy(training(feeds, training=False))
    return float(np.max(np.abs(np.asarray(served) - expected[:, :window])))


def _source_index(training: Any, encoder: Any) -> int:
    return 0 if training.inputs[0] is encoder.inputs[0] else 1
