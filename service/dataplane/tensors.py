"""Tensors of the Open Inference Protocol: JSON `data` or Triton's binary tensor data
extension (a JSON header of `Inference-Header-Content-Length` bytes, then each binary
tensor's raw little-endian bytes in input order; BYTES elements each prefixed with
their length as a 4-byte little-endian integer)."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import InvalidInput, shown
from service.oip_schemas import RequestInput

NUMERIC = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}


@dataclass(frozen=True)
class Tensor:
    """An output tensor: numeric data as a numpy array, BYTES as a list of bytes."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray | list[bytes]


def split_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary data after it."""
    if header_length is None:
        return raw, b""
    if not header_length.isdigit() or int(header_length) > len(raw):
        raise InvalidInput(
            f"Inference-Header-Content-Length: {shown(header_length)} is not a byte count "
            f"within the body's {len(raw)} bytes",
            field="Inference-Header-Content-Length",
        )
    length = int(header_length)
    return raw[:length], raw[length:]


def _flat(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _split_bytes(raw: bytes, field: str) -> list[bytes]:
    items, at = [], 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise InvalidInput(f"{field}: BYTES data ends inside a length prefix", field=field)
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise InvalidInput(f"{field}: BYTES element runs past the data's end", field=field)
        items.append(raw[at : at + size])
        at += size
    return items


def read_input(given: RequestInput, field: str, binary: memoryview, at: int) -> tuple[Any, int]:
    """An input's values (a numpy array shaped as declared, or a list of bytes for
    BYTES) and the offset of the next binary input."""
    shape = tuple(given.shape)
    if any(d < 0 for d in shape):
        raise InvalidInput(f"{field}.shape: {list(shape)} has a negative size", field=field)
    count = math.prod(shape)
    size = given.parameters.binary_data_size if given.parameters else None
    if given.datatype not in NUMERIC and given.datatype != "BYTES":
        raise InvalidInput(
            f"{field}.datatype: {shown(given.datatype)} is not a tensor datatype; allowed: "
            f"{', '.join([*NUMERIC, 'BYTES'])}",
            field=f"{field}.datatype",
        )
    if size is not None:
        if given.data is not None:
            raise InvalidInput(
                f"{field}: give either 'data' or parameters.binary_data_size, not both",
                field=field,
            )
        if at + size > len(binary):
            raise InvalidInput(
                f"{field}: binary_data_size {size} runs past the {len(binary)} bytes of binary "
                "data after the JSON header",
                field=field,
            )
        raw = bytes(binary[at : at + size])
        at += size
        if given.datatype == "BYTES":
            values: Any = _split_bytes(raw, field)
        else:
            dtype = np.dtype(NUMERIC[given.datatype]).newbyteorder("<")
            if size != count * dtype.itemsize:
                raise InvalidInput(
                    f"{field}: {size} bytes of binary data, but shape {list(shape)} of "
                    f"{given.datatype} needs {count * dtype.itemsize}",
                    field=field,
                )
            values = np.frombuffer(raw, dtype=dtype)
    elif given.data is None:
        raise InvalidInput(
            f"{field}: no 'data' and no parameters.binary_data_size", field=f"{field}.data"
        )
    else:
        flat = _flat(given.data)
        if given.datatype == "BYTES":
            if not all(isinstance(v, str) for v in flat):
                raise InvalidInput(f"{field}.data: BYTES data must be strings", field=field)
            values = [v.encode() for v in flat]
        else:
            values = _numbers(flat, given.datatype, f"{field}.data")
    if len(values) != count:
        raise InvalidInput(
            f"{field}: {len(values)} values, but shape {list(shape)} holds {count}", field=field
        )
    if given.datatype == "BYTES":
        return values, at
    return np.asarray(values).reshape(shape), at


def _numbers(flat: list[Any], datatype: str, field: str) -> np.ndarray:
    integer = datatype.startswith(("INT", "UINT"))
    for j, v in enumerate(flat):
        if datatype == "BOOL":
            ok = isinstance(v, bool)
        elif integer:
            ok = isinstance(v, int) and not isinstance(v, bool)
        else:
            ok = isinstance(v, int | float) and not isinstance(v, bool)
        if not ok:
            raise InvalidInput(
                f"{field}[{j}]: {shown(v)} is not a {datatype} value", field=f"{field}[{j}]"
            )
    dtype = np.dtype(NUMERIC[datatype])
    if integer:
        info = np.iinfo(dtype)  # type: ignore[type-var]
        for j, v in enumerate(flat):
            if not info.min <= v <= info.max:
                raise InvalidInput(
                    f"{field}[{j}]: {shown(v)} is outside {datatype}'s range", field=f"{field}[{j}]"
                )
    return np.asarray(flat, dtype=dtype)


def encode_outputs(
    outputs: list[Tensor], binary: set[str]
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The outputs' JSON entries and, for those named in `binary`, their raw bytes (in
    the same order), each entry then carrying parameters.binary_data_size."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for t in outputs:
        entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        if t.name in binary:
            if isinstance(t.data, list):
                raw = b"".join(struct.pack("<I", len(b)) + b for b in t.data)
            else:
                raw = np.ascontiguousarray(t.data, dtype=t.data.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        elif isinstance(t.data, list):
            entry["data"] = [b.decode() for b in t.data]
        else:
            entry["data"] = t.data.reshape(-1).tolist()
        entries.append(entry)
    return entries, blobs
