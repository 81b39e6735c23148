"""Tensors of the Open Inference Protocol: JSON `data` or Triton's binary tensor data
extension (a JSON header of `Inference-Header-Content-Length` bytes, then each binary
tensor's raw little-endian bytes in input order; BYTES elements each prefixed with
their length as a 4-byte little-endian integer)."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.digits import decimal
from service.errors import InvalidInput, shown
from service.wire.oip import RequestInput

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
MAX_DIMENSIONS = 64  # numpy's


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
    length = decimal(header_length)
    if length is None or length > len(raw):
        raise InvalidInput(
            f"Inference-Header-Content-Length: {shown(header_length)} is not a byte count "
            f"within the body's {len(raw)} bytes",
            field="Inference-Header-Content-Length",
        )
    return raw[:length], raw[length:]


def flat_values(data: list[Any], limit: int) -> list[Any] | None:
    """The values of nested lists in row-major order; None as soon as there are more
    than `limit` (a tensor is never built larger than its shape says)."""
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
            if len(out) > limit:
                return None
        else:
            stack.pop()
    return out


def _split_bytes(raw: bytes, field: str, limit: int) -> list[bytes] | None:
    """BYTES elements, each after its 4-byte length; None beyond `limit` of them."""
    items: list[bytes] = []
    at = 0
    while at < len(raw):
        if len(items) == limit:
            return None
        if at + 4 > len(raw):
            raise InvalidInput(f"{field}: BYTES data ends inside a length prefix", field=field)
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise InvalidInput(f"{field}: BYTES element runs past the data's end", field=field)
        items.append(raw[at : at + size])
        at += size
    return items


def check_datatype(datatype: str, field: str) -> None:
    if datatype not in NUMERIC and datatype != "BYTES":
        raise InvalidInput(
            f"{field}.datatype: {shown(datatype)} is not a tensor datatype; allowed: "
            f"{', '.join([*NUMERIC, 'BYTES'])}",
            field=f"{field}.datatype",
        )


def listed(shape: Sequence[int]) -> str:
    """A client's shape in a message, kept short (as `shown` keeps a value)."""
    more = ", ..." if len(shape) > 8 else ""
    return f"[{', '.join(shown(d) for d in shape[:8])}{more}]"


def miscounted(field: str, shape: Sequence[int], values: int | None) -> InvalidInput:
    """`values`: how many the data holds (None: more than the shape)."""
    count = math.prod(shape)
    held = f"more than {shown(count)}" if values is None else values
    return InvalidInput(
        f"{field}: {held} values, but shape {listed(shape)} holds {shown(count)}", field=field
    )


def read_input(given: RequestInput, field: str, binary: memoryview, at: int) -> tuple[Any, int]:
    """An input's values (a numpy array shaped as declared, or a list of bytes for
    BYTES) and the offset of the next binary input. Its size is checked against its
    shape before anything the size of the data is built."""
    shape = tuple(given.shape)
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidInput(
            f"{field}.shape: {len(shape)} dimensions; at most {MAX_DIMENSIONS}",
            field=f"{field}.shape",
        )
    if any(d < 0 for d in shape):
        raise InvalidInput(
            f"{field}.shape: {listed(shape)} has a negative size", field=f"{field}.shape"
        )
    count = math.prod(shape)
    size = given.parameters.binary_data_size if given.parameters else None
    check_datatype(given.datatype, field)
    values: Any
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
            values = _split_bytes(raw, field, count)
        else:
            dtype = np.dtype(NUMERIC[given.datatype]).newbyteorder("<")
            if size != count * dtype.itemsize:
                raise InvalidInput(
                    f"{field}: {size} bytes of binary data, but shape {listed(shape)} of "
                    f"{given.datatype} needs {shown(count * dtype.itemsize)}",
                    field=field,
                )
            values = np.frombuffer(raw, dtype=dtype)
    elif given.data is None:
        raise InvalidInput(
            f"{field}: no 'data' and no parameters.binary_data_size", field=f"{field}.data"
        )
    else:
        flat = flat_values(given.data, count)
        if flat is None or given.datatype != "BYTES" or len(flat) != count:
            values = flat
        elif not all(isinstance(v, str) for v in flat):
            raise InvalidInput(f"{field}.data: BYTES data must be strings", field=field)
        else:
            values = [v.encode() for v in flat]
    if values is None or len(values) != count:
        raise miscounted(field, shape, len(values) if values is not None else None)
    if given.datatype == "BYTES":
        return values, at
    if isinstance(values, list):
        values = _numbers(values, given.datatype, f"{field}.data")
    return values.reshape(shape), at


def _numbers(flat: list[Any], datatype: str, field: str) -> np.ndarray:
    """JSON values as a numeric tensor: each of the datatype's kind (no bool for a
    number, no float for an integer) and within its range (a float's finite range)."""
    dtype = np.dtype(NUMERIC[datatype])
    kinds: tuple[type, ...] = (
        (bool,) if dtype.kind == "b" else (int,) if dtype.kind in "iu" else (int, float)
    )
    if not set(map(type, flat)).issubset(kinds):
        j = next(j for j, v in enumerate(flat) if type(v) not in kinds)
        raise InvalidInput(
            f"{field}[{j}]: {shown(flat[j])} is not a {datatype} value", field=f"{field}[{j}]"
        )
    if dtype.kind == "b":
        return np.asarray(flat, dtype=dtype)
    low: float
    high: float
    wide: type[np.generic]
    if dtype.kind in "iu":
        info = np.iinfo(dtype)  # type: ignore[type-var]
        low, high = int(info.min), int(info.max)
        wide = np.uint64 if dtype.kind == "u" else np.int64
    else:
        high = float(np.finfo(dtype).max)
        low, wide = -high, np.float64
    try:  # vectorised while every value fits the widest type of its kind
        values = np.asarray(flat, dtype=wide)
        outside = ~((values >= low) & (values <= high))  # NaN and infinities too
        bad = int(outside.argmax()) if outside.any() else None
    except OverflowError:  # a Python int beyond 64 bits, or beyond float64
        bad = next(j for j, v in enumerate(flat) if not low <= v <= high)
    if bad is not None:
        raise InvalidInput(
            f"{field}[{bad}]: {shown(flat[bad])} is outside {datatype}'s range",
            field=f"{field}[{bad}]",
        )
    return values.astype(dtype)


def encode_outputs(
    outputs: list[Tensor], binary: set[str]
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The outputs' JSON entries (numeric `data` as a flat numpy array) and, for those
    named in `binary`, their raw bytes (in the same order), each entry then carrying
    parameters.binary_data_size."""
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
            entry["data"] = t.data.reshape(-1)  # serialised as a list, in pieces if large
        entries.append(entry)
    return entries, blobs
