"""`.keras` and `.h5` files (Keras 3, and `.h5` written by Keras 2: tf.keras <= 2.15 or
tf_keras) as a `Graph` over a `keras.Model`."""

from __future__ import annotations

import inspect
import io
import json
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import keras
import tensorflow as tf

from service.inference.model.formats import ModelFileError
from service.inference.model.formats.graph import TensorInfo

# Keras 2 recurrent layers: their configs carry `time_major`, which Keras 3 removed, and
# their legacy call nodes pass `initial_state` as extra inputs ([x, h, c]).
_RECURRENT = {"LSTM", "GRU", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}
_TAKES_INITIAL_STATE = _RECURRENT | {"Bidirectional"}
_MODELS = {"Functional", "Model", "Sequential"}
_WRAPPED = ("layer", "backward_layer")  # Bidirectional, TimeDistributed

# Keras 3's `.h5` loader turns any config string naming a function in `keras.layers`
# into that function: Attention's score_mode "dot" became `keras.layers.dot` and was
# refused (Keras 3's own `.h5` files too). Custom objects that map those names to
# themselves keep them strings.
_AS_STRINGS: dict[str, Any] = {
    name: name for name, value in vars(keras.layers).items() if inspect.isfunction(value)
}


def unique_names(names: Sequence[str]) -> list[str]:
    """Keras 2's output names: a layer with several outputs gets `name`, `name_1`, ...
    (also the keys of the SavedModel signature Keras 2 writes)."""
    seen: set[str] = set()
    counts: dict[str, int] = {}
    result = []
    for name in names:
        proposal = name
        while proposal in seen:
            counts[name] = counts.get(name, 1)
            proposal = f"{name}_{counts[name]}"
            counts[name] += 1
        seen.add(proposal)
        result.append(proposal)
    return result


def _info(tensor: Any, name: str) -> TensorInfo:
    shape = tuple(None if d is None else int(d) for d in tensor.shape)
    return TensorInfo(name, shape, str(tf.as_dtype(tensor.dtype).name))


class KerasGraph:
    """A Keras model in its own input and output order."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        try:
            self._structure = model.input  # one tensor, a list or a dict
        except AttributeError:  # Sequential: one tensor
            self._structure = model.inputs[0]
        input_names = [t.name for t in model.inputs]
        output_names = unique_names([t._keras_history[0].name for t in model.outputs])
        self.inputs = tuple(map(_info, model.inputs, input_names))
        self.outputs = tuple(map(_info, model.outputs, output_names))

    def __call__(
        self, inputs: Sequence[tf.Tensor], masks: Sequence[tf.Tensor | None] | None = None
    ) -> list[tf.Tensor]:
        # the model's own structure (one tensor, a list, a dict): no structure warning
        structured = keras.tree.pack_sequence_as(self._structure, list(inputs))
        if masks is None:
            return list(keras.tree.flatten(self.model(structured, training=False)))
        # a functional model gives each input the mask given for it, as the trained model's
        # tensors carried it (the split decoder's memory input would carry none)
        called = self.model(structured, training=False, mask=list(masks))
        return list(keras.tree.flatten(called))

    def single_step(self) -> None:
        """Called on one time step only: unrolling computes the same cell call without a
        nested `while_loop` (measured ~15% faster per decode on the shipped model)."""
        for layer in self.model._flatten_layers(include_self=False, recursive=True):
            if isinstance(layer, keras.layers.RNN):
                layer.unroll = True


def load_keras(path: Path) -> KerasGraph:
    if not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise ModelFileError("not a .keras archive (not a zip file)")
    return KerasGraph(keras.saving.load_model(path, compile=False, safe_mode=True))


def load_h5(path: Path) -> KerasGraph:
    if not h5py.is_hdf5(path):
        raise ModelFileError("not an HDF5 file")
    with h5py.File(path, "r") as f:
        version = f.attrs.get("keras_version", b"")
        version = version.decode() if isinstance(version, bytes) else str(version)
        if re.match(r"[12]\.", version):  # a Keras 2 (or older) config: upgrade it
            return KerasGraph(_load_keras2_h5(f))
    return KerasGraph(
        keras.saving.load_model(path, custom_objects=_AS_STRINGS, compile=False, safe_mode=True)
    )


def _load_keras2_h5(f: h5py.File) -> keras.Model:
    """Rebuild a Keras 2 file in Keras 3: the model config is upgraded as data (nothing in
    the file runs; safe mode stays on), and handed with the weights, copied into an
    in-memory HDF5 file, to the loader `keras.saving.load_model` uses for `.h5`."""
    from keras.src.legacy.saving import legacy_h5_format

    raw = f.attrs.get("model_config")
    if raw is None:
        raise ModelFileError("no model config in the file (a weights-only file?)")
    config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    upgrade_layer(config)
    with h5py.File(io.BytesIO(), "w") as memory:
        for key, value in f.attrs.items():
            memory.attrs[key] = value
        memory.attrs["model_config"] = json.dumps(config)
        if "model_weights" in f:
            f.copy(f["model_weights"], memory, name="model_weights")
        model: keras.Model = legacy_h5_format.load_model_from_hdf5(
            memory, custom_objects=_AS_STRINGS, compile=False, safe_mode=True
        )
    return model


# ---- Keras 2 config -> Keras 3 config ---------------------------------------------------


def upgrade_layer(layer: dict[str, Any]) -> None:
    """Rewrite one serialised Keras 2 layer (or model) in place for Keras 3."""
    kind, config = layer.get("class_name"), layer.get("config")
    # Keras 2 configs Keras 3 refuses: recurrent layers' `time_major`, Attention's
    # `causal` (TF <= 2.9), an Embedding's `input_length` (a warning)
    if not isinstance(config, dict):
        return
    name = config.get("name", kind)
    if kind in _RECURRENT and config.pop("time_major", False):
        raise ModelFileError(f"layer {name!r}: time_major=True has no Keras 3 equivalent")
    if kind == "Embedding":
        config.pop("input_length", None)  # Keras 3 warns; the input layer has the shape
    if kind in {"Attention", "AdditiveAttention"} and config.pop("causal", False):
        # TF <= 2.9 configured causal masking on the layer; Keras 3 takes it per call
        for node in layer.get("inbound_nodes", []):
            for entry in node:
                if len(entry) == 3:
                    entry.append({})
                entry[3]["use_causal_mask"] = True
    for key in _WRAPPED:
        if isinstance(config.get(key), dict):
            upgrade_layer(config[key])
    if kind in _MODELS and isinstance(config.get("layers"), list):
        _upgrade_model(config, sequential=kind == "Sequential")


def _upgrade_model(config: dict[str, Any], sequential: bool) -> None:
    layers: list[dict[str, Any]] = config["layers"]
    if sequential and layers and layers[0].get("class_name") != "InputLayer":
        first = layers[0].get("config", {})
        shape = first.get("batch_input_shape")
        if shape is not None:  # Keras 2 kept the input shape on the first layer
            layers.insert(
                0,
                {
                    "class_name": "InputLayer",
                    "config": {
                        "batch_input_shape": shape,
                        "dtype": first.get("dtype", "float32"),
                        "name": f"{first.get('name', 'layer')}_input",
                    },
                },
            )
    for layer in layers:
        upgrade_layer(layer)
        if layer.get("class_name") == "InputLayer":
            continue
        # Keras 2 wrote the input shape into some layers' configs (every Embedding);
        # Keras 3 would warn that layers take no input shape
        layer.get("config", {}).pop("batch_input_shape", None)
        if layer.get("class_name") in _TAKES_INITIAL_STATE:
            layer["inbound_nodes"] = [_state_node(n) for n in layer.get("inbound_nodes", [])]


def _state_node(node: Any) -> Any:
    """A Keras 2 node `layer([x, *states])` as the Keras 3 node `layer(x, initial_state=
    states)`: Keras 3 recurrent layers take one input tensor. Keras 2 Bidirectional
    nodes also record `initial_state=None, constants=None`, which Keras 3 refuses."""
    if not isinstance(node, list) or not node:
        return node
    kwargs = {}
    for entry in node:
        if len(entry) == 4:
            kwargs = {k: v for k, v in entry[3].items() if v is not None}
            entry[3] = kwargs
    if "constants" in kwargs:
        raise ModelFileError("recurrent layers called with constants are not supported")
    if len(node) == 1:
        return node
    kwargs["initial_state"] = [_tensor(entry) for entry in node[1:]]
    return {"args": [_tensor(node[0])], "kwargs": kwargs}


def _tensor(entry: list[Any]) -> dict[str, Any]:
    # shape and dtype are placeholders: Keras swaps in the tensor from keras_history
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": [], "dtype": "float32", "keras_history": list(entry[:3])},
    }
