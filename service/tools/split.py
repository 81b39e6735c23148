"""Split a Keras seq2seq training model `[source, decoder_input] -> probabilities` into the
inference encoder `source -> [*states]` and decoder `[token, *states] -> [probabilities, *states]`.

keras-io's lstm_seq2seq example rebuilds them from `model.layers[2..4]`; this follows the graph
instead: the decoder recurrent layer is the one called with `initial_state=` computed from the
other input alone, and the decoder re-calls the training model's own layers on new inputs.
Whether every decoder-path layer acts on each time step alone cannot be read from the graph in
general: `teacher_forced_difference` checks a split numerically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import numpy.typing as npt

EXPECTED = (
    "expected a functional model [source, decoder_input] -> probabilities whose decoder "
    "recurrent layer (LSTM, GRU or SimpleRNN with return_sequences=True) is called on the "
    "decoder input with initial_state= the final states of an encoder recurrent layer run on "
    "the source, as in keras-io's lstm_seq2seq example"
)
_NONE: frozenset[int] = frozenset()


class SplitError(Exception):
    """The training model cannot be split: the message says why and what layout is expected."""


@dataclass
class _Plan:
    source: int  # index in model.inputs
    target: int  # index in model.inputs of the decoder input
    decoder_nodes: list[Any]  # the nodes that depend on the decoder input, inputs first
    initial_states: dict[int, list[Any]] = field(default_factory=dict)  # id(node) -> tensors


def _producer(tensor: Any) -> Any | None:
    operation, node_index, _ = tensor._keras_history
    return None if operation is None else operation._inbound_nodes[node_index]


def _initial_state(node: Any) -> list[Any] | None:
    """The `initial_state` tensors a recurrent layer call got; None if not a recurrent call."""
    if not isinstance(node.operation, keras.layers.RNN | keras.layers.Bidirectional):
        return None
    args, kwargs = node.arguments.args, node.arguments.kwargs
    state = kwargs.get("initial_state", args[1] if len(args) > 1 else None)
    return [] if state is None else list(keras.tree.flatten(state))


def _walk(model: Any) -> tuple[list[Any], dict[int, frozenset[int]]]:
    """The model's nodes in topological order, and which model inputs each tensor depends on."""
    deps: dict[int, frozenset[int]] = {id(t): frozenset({i}) for i, t in enumerate(model.inputs)}
    order: list[Any] = []
    seen: set[int] = set()

    def visit(tensor: Any) -> None:
        node = _producer(tensor)
        if id(tensor) in deps or node is None or id(node) in seen:
            deps.setdefault(id(tensor), _NONE)
            return
        seen.add(id(node))
        for t in node.input_tensors:
            visit(t)
        found = _NONE.union(*(deps[id(t)] for t in node.input_tensors))
        for t in node.output_tensors:
            deps[id(t)] = found
        order.append(node)

    for output in model.outputs:
        visit(output)
    return order, deps


def _refuse(model: Any, why: str) -> SplitError:
    return SplitError(f"cannot split model {model.name!r}: {why}; {EXPECTED}")


def _analyse(model: Any) -> _Plan:
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not isinstance(model, keras.Model) or inputs is None or outputs is None:
        raise _refuse(model, "it is not a functional Keras model (no symbolic inputs/outputs)")
    if len(inputs) != 2:
        why = "the source and the decoder input, i.e. the target shifted right by one step"
        raise _refuse(model, f"it has {len(inputs)} input(s), not two ({why})")
    if len(outputs) != 1:
        raise _refuse(model, f"it has {len(outputs)} outputs, not one (the probabilities)")
    nodes, deps = _walk(model)

    def on(tensors: list[Any]) -> frozenset[int]:
        return _NONE.union(*(deps[id(t)] for t in tensors))

    recurrent = [n for n in nodes if _initial_state(n) is not None]
    if not recurrent:
        raise _refuse(model, "it has no recurrent layer (LSTM, GRU, SimpleRNN, Bidirectional)")
    starts = {  # (source, decoder input) of each layer started from states of one input alone
        (next(iter(on(state))), next(iter(others)))
        for n in recurrent
        if len(on(state := _initial_state(n) or [])) == 1
        and len(others := on(n.input_tensors[:1]) - on(state)) == 1
    }
    if len(starts) != 1:
        names = ", ".join(repr(n.operation.name) for n in recurrent)
        raise _refuse(
            model,
            "no recurrent layer is started from another recurrent layer's final states (none "
            f"of {names} is called on one input with initial_state= computed from the other "
            "input alone)"
            if not starts
            else "recurrent layers are started from states computed from either input",
        )
    ((source, target),) = starts
    plan = _Plan(source, target, [n for n in nodes if target in on(n.output_tensors)])
    _check_decoder(model, plan, deps)
    return plan


def _check_decoder(model: Any, plan: _Plan, deps: dict[int, frozenset[int]]) -> None:
    """Refuse decoder paths that one-step decoding cannot reproduce; note the initial states."""
    for node in plan.decoder_nodes:
        layer, state = node.operation, _initial_state(node)
        if isinstance(layer, keras.layers.Bidirectional):
            raise _refuse(
                model,
                f"the decoder path has a Bidirectional layer {layer.name!r}, which reads the "
                "decoder input backwards too and cannot run one step at a time",
            )
        for tensor in node.input_tensors:
            if plan.target in deps[id(tensor)] or not deps[id(tensor)]:
                continue
            if state and any(tensor is s for s in state):
                continue
            raise _refuse(
                model,
                f"layer {layer.name!r} on the decoder path reads a tensor of shape "
                f"{tuple(tensor.shape)} computed from the source alone other than as a "
                "recurrent layer's initial_state (e.g. attention over the encoder outputs); "
                "each decoder step would need it, which this split does not support",
            )
        if state is None:
            continue
        if not state or any(plan.target in deps[id(s)] for s in state):
            raise _refuse(
                model,
                f"recurrent layer {layer.name!r} on the decoder path does not start from the "
                "encoder's states, so its state would not be carried from step to step",
            )
        if not layer.return_sequences or layer.go_backwards:
            raise _refuse(
                model,
                f"decoder recurrent layer {layer.name!r} must run forwards and return its "
                "whole sequence (return_sequences=True, go_backwards=False)",
            )
        plan.initial_states[id(node)] = state
    for tensor in [t for n in plan.decoder_nodes for t in n.input_tensors] + model.outputs:
        made_by, _, index = tensor._keras_history  # a final decoder state must not be used
        if index > 0 and id(_producer(tensor)) in plan.initial_states:
            raise _refuse(
                model,
                f"the model uses the final state of decoder recurrent layer {made_by.name!r}, "
                "which one-step decoding cannot reproduce",
            )


def split_training_model(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """`(encoder, decoder)` sharing `model`'s layers and weights.

    encoder: `source -> [*states]` (the tensors the training model feeds to `initial_state`);
    decoder: `[token, *states] -> [probabilities, *states]`, the token in the training decoder
    input's encoding with an open time dimension (one step at a time, or several). A decoder
    recurrent layer built without `return_state=True` is re-run by a `keras.layers.RNN` around
    the same cell (same weights). Raises `SplitError` saying why a model cannot be split.
    """
    plan = _analyse(model)
    taken = {layer.name for layer in model.layers}

    def fresh(name: str) -> str:
        candidate, n = name, 0
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        return candidate

    target = model.inputs[plan.target]
    token = keras.Input((None, *target.shape[2:]), dtype=target.dtype, name=fresh("token"))
    mapping: dict[int, Any] = {id(target): token}
    encoder_outputs: list[Any] = []
    state_inputs: list[Any] = []
    state_outputs: list[Any] = []

    def fill(value: Any) -> Any:
        return keras.tree.map_structure(
            lambda x: mapping.get(id(x)) if isinstance(x, keras.KerasTensor) else x, value
        )

    for node in plan.decoder_nodes:
        layer, state = node.operation, plan.initial_states.get(id(node))
        args, kwargs = list(fill(node.arguments.args)), dict(fill(node.arguments.kwargs))
        if state is not None:
            first = len(state_inputs)
            new_states = [
                keras.Input(s.shape[1:], dtype=s.dtype, name=fresh(f"state_{first + i}"))
                for i, s in enumerate(state)
            ]
            encoder_outputs += state
            state_inputs += new_states
            if "initial_state" in kwargs or len(args) < 2:
                kwargs["initial_state"] = new_states
            else:
                args[1] = new_states
            if not layer.return_state:
                layer = keras.layers.RNN(
                    layer.cell,
                    return_sequences=True,
                    return_state=True,
                    unroll=layer.unroll,
                    name=fresh(f"{layer.name}_stepper"),
                )
        produced = keras.tree.flatten(layer(*args, **kwargs))
        if state is not None:
            state_outputs += produced[1:]
        for old, new in zip(node.output_tensors, produced, strict=False):
            mapping[id(old)] = new
    probabilities = mapping[id(model.outputs[0])]
    encoder = keras.Model(model.inputs[plan.source], encoder_outputs, name=f"{model.name}_encoder")
    decoder = keras.Model(
        [token, *state_inputs], [probabilities, *state_outputs], name=f"{model.name}_decoder"
    )
    return encoder, decoder


def _numpy(outputs: Any) -> list[npt.NDArray[Any]]:
    listed = outputs if isinstance(outputs, list | tuple) else [outputs]
    return [keras.ops.convert_to_numpy(x) for x in listed]


def teacher_forced_difference(
    model: keras.Model,
    encoder: keras.Model,
    decoder: keras.Model,
    sources: npt.NDArray[Any],
    decoder_inputs: npt.NDArray[Any],
) -> float:
    """Max |training model - split models stepped one decoder input at a time| over the
    probabilities, for `sources` and teacher-forced `decoder_inputs` (batch, time, ...)."""
    plan = _analyse(model)
    feeds: list[Any] = [None, None]
    feeds[plan.source], feeds[plan.target] = sources, decoder_inputs
    expected = keras.ops.convert_to_numpy(model(feeds, training=False))
    states = _numpy(encoder(sources, training=False))
    steps = []
    for t in range(decoder_inputs.shape[1]):
        outputs = _numpy(decoder([decoder_inputs[:, t : t + 1], *states], training=False))
        steps.append(outputs[0])
        states = outputs[1:]
    stepped = np.concatenate(steps, axis=1)
    if stepped.shape != expected.shape:
        raise ValueError(f"stepped shape {stepped.shape} != training shape {expected.shape}")
    return float(np.max(np.abs(stepped - expected)))
