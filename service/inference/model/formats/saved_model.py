"""TF SavedModel directories (Keras 2's default `model.save(dir)`, `tf.saved_model.save`,
Keras 3 `model.export`) as a `Graph` over their `serving_default` signature.

A signature takes and returns dicts keyed by name, which say nothing of the model's
order (an LSTM decoder's h and c even have the same shape). The order is recovered from,
in turn: the Keras 2 model config in `keras_metadata.pb` (its `input_layers` and
`output_layers`), the structured signature of a restored call function (`serve`,
`__call__`), and last the signature keys in natural order (`output_2` before
`output_10`). `input_order` and `output_order` say which one answered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import tensorflow as tf

from service.inference.model.formats import ModelFileError
from service.inference.model.formats.graph import TensorInfo
from service.inference.model.formats.keras_file import unique_names

SIGNATURE = "serving_default"
# Keras 3 `export` restores `serve`; Keras 2 and tf.Module restore `__call__`
_CALL_FUNCTIONS = ("serve", "__call__")


class SavedModelGraph:
    def __init__(self, directory: Path) -> None:
        self._root = tf.saved_model.load(str(directory))  # keeps the variables alive
        signatures = self._root.signatures
        if SIGNATURE not in signatures:
            raise ModelFileError(
                f"no {SIGNATURE!r} signature (has: {', '.join(signatures) or 'none'})"
            )
        self._signature = signatures[SIGNATURE]
        in_specs: dict[str, tf.TensorSpec] = self._signature.structured_input_signature[1]
        out_specs = self._signature.structured_outputs
        if not isinstance(out_specs, dict):  # signatures always return dicts
            raise ModelFileError(f"{SIGNATURE} returns {type(out_specs).__name__}, not a dict")
        config = _keras_config(directory)
        input_names, self.input_order = _input_order(in_specs, config, self._functions())
        output_names, self.output_order = _output_order(out_specs, config, self._functions())
        self.inputs = tuple(_info(name, in_specs[name]) for name in input_names)
        self.outputs = tuple(_info(name, out_specs[name]) for name in output_names)

    def __call__(
        self, inputs: Sequence[tf.Tensor], masks: Sequence[tf.Tensor | None] | None = None
    ) -> list[tf.Tensor]:
        """`masks` are not passed: a signature has no Keras masks (only what it was traced
        with)."""
        feeds = {
            info.name: tf.cast(tensor, info.dtype)
            for info, tensor in zip(self.inputs, inputs, strict=True)
        }
        result = self._signature(**feeds)
        return [result[info.name] for info in self.outputs]

    def single_step(self) -> None:
        """A traced graph cannot be re-traced unrolled."""

    def _functions(self) -> Iterator[Any]:
        """Concrete functions of the restored call methods, whose structured signatures
        keep the model's argument and output structure."""
        for attr in _CALL_FUNCTIONS:
            function = getattr(self._root, attr, None)
            yield from getattr(function, "concrete_functions", ())


def _info(name: str, spec: tf.TensorSpec) -> TensorInfo:
    if spec.shape.rank is None:
        raise ModelFileError(f"{SIGNATURE} tensor {name!r} has no known rank")
    return TensorInfo(name, tuple(spec.shape.as_list()), spec.dtype.name)


def natural_order(keys: Sequence[str]) -> list[str]:
    def key(name: str) -> list[Any]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]

    return sorted(keys, key=key)


def _is_order(names: Sequence[str] | None, keys: Sequence[str]) -> TypeGuard[list[str]]:
    """`names` orders exactly the signature's keys."""
    return names is not None and sorted(names) == sorted(keys)


def _input_order(
    specs: dict[str, tf.TensorSpec], config: dict[str, Any] | None, functions: Iterator[Any]
) -> tuple[list[str], str]:
    keys = list(specs)
    if config is not None:
        names = _layer_names(config.get("input_layers"))
        if _is_order(names, keys):
            return names, "keras_metadata"
    for function in functions:
        flat = tf.nest.flatten(function.structured_input_signature)
        names = [s.name for s in flat if isinstance(s, tf.TensorSpec)]
        if _is_order(names, keys):
            return names, "call_signature"
    return natural_order(keys), "signature_keys"


def _output_order(
    specs: dict[str, tf.TensorSpec], config: dict[str, Any] | None, functions: Iterator[Any]
) -> tuple[list[str], str]:
    keys = list(specs)
    if config is not None:
        layers = _layer_names(config.get("output_layers"))
        names = unique_names(layers) if layers is not None else None
        if _is_order(names, keys):
            return names, "keras_metadata"
    for function in functions:
        outputs = function.structured_outputs
        if isinstance(outputs, list | tuple) and len(tf.nest.flatten(outputs)) == len(keys):
            # positions whose shape and dtype match exactly one signature output
            matches = [
                [k for k in keys if _same(specs[k], spec)] for spec in tf.nest.flatten(outputs)
            ]
            names = [m[0] for m in matches if len(m) == 1]
            if len(names) == len(keys) and _is_order(names, keys):
                return names, "call_signature"
    return natural_order(keys), "signature_keys"


def _same(a: tf.TensorSpec, b: Any) -> bool:
    return isinstance(b, tf.TensorSpec) and a.dtype == b.dtype and a.shape == b.shape


def _layer_names(spec: Any) -> list[str] | None:
    """Layer names from a Keras 2 `input_layers`/`output_layers` value: `[name, node,
    tensor]` triples, possibly nested in lists, dicts or serialised tuples."""
    if isinstance(spec, dict):
        if spec.get("class_name") == "__tuple__":
            return _layer_names(spec.get("items"))
        parts = [_layer_names(spec[k]) for k in sorted(spec)]
    elif isinstance(spec, list):
        if len(spec) == 3 and isinstance(spec[0], str) and isinstance(spec[1], int):
            return [spec[0]]
        parts = [_layer_names(item) for item in spec]
    else:
        return None
    if any(p is None for p in parts):
        return None
    return [name for p in parts if p is not None for name in p]


def _keras_config(directory: Path) -> dict[str, Any] | None:
    """The root model's config from `keras_metadata.pb` (written by Keras 2 since TF 2.5),
    or None. The file is a `SavedMetadata` proto; it is read here without Keras 2."""
    path = directory / "keras_metadata.pb"
    if not path.is_file():
        return None
    try:
        for number, node in _fields(path.read_bytes()):
            if number != 1 or not isinstance(node, bytes):  # SavedMetadata.nodes
                continue
            fields = dict(_fields(node))
            if fields.get(3) == b"root":  # SavedObject.node_path
                metadata = json.loads(bytes(fields.get(5, b"{}")))  # SavedObject.metadata
                config = metadata.get("config")
                return config if isinstance(config, dict) else None
    except (ValueError, IndexError):  # not the proto we know: fall back to the others
        return None
    return None


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of a serialised protobuf message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def load_saved_model(directory: Path) -> SavedModelGraph:
    return SavedModelGraph(directory)
