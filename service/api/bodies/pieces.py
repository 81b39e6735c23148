"""Large JSON answers serialised a bounded piece at a time, the event loop free between
pieces.

Serialising holds the GIL (pydantic-core's `to_json` as `json.dumps` and numpy's
`tolist`): 262,144 probabilities hold it 30-100 ms in one call, and a worker thread
would not help, since the event loop needs the GIL to run at all. So a large answer
is cut along its lists (and numpy arrays) into pieces of about `PIECE` values, each
serialised by `to_json` exactly as the whole would be, and the loop runs other work
whenever a piece has taken its time. A small answer is serialised in one call.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from anyio.lowlevel import checkpoint
from pydantic import BaseModel
from pydantic_core import to_json

PIECE = 8192  # values: ~0.5 ms of tolist + to_json
TURN = 0.0005  # seconds of serialising before the event loop gets a turn


SCALARS = frozenset({int, float, str, bool, type(None)})


def _values(value: Any) -> int:
    """About how many values `value` holds (its lists' lengths times their first item's).
    Runs for every answer: most values are scalars, told by their exact type first."""
    if type(value) in SCALARS:
        return 1
    if isinstance(value, list):
        return len(value) * _values(value[0]) if value else 1
    if isinstance(value, np.ndarray):
        return int(value.size)
    if isinstance(value, dict):
        return sum(_values(v) for v in value.values())
    if isinstance(value, BaseModel):
        return sum(_values(v) for v in value.__dict__.values())
    return 1


def _json(value: Any) -> bytes:
    return to_json(value, by_alias=False, exclude_none=True, inf_nan_mode="null", fallback=_listed)


def _listed(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not serialisable as JSON: {type(value).__name__}")


def pieces(value: Any) -> Iterator[bytes]:
    """`value` as JSON, as `model_dump_json(exclude_none=True)` writes a model (numpy
    arrays as flat lists; infinities and NaN as null), in pieces of about PIECE values."""
    if _values(value) <= PIECE:
        yield _json(value)
    elif isinstance(value, BaseModel | dict):
        fields = value.__dict__ if isinstance(value, BaseModel) else value
        yield b"{"
        first = True
        for name, item in fields.items():
            if item is None and isinstance(value, BaseModel):
                continue
            yield (b"" if first else b",") + to_json(name) + b":"
            first = False
            yield from pieces(item)
        yield b"}"
    elif isinstance(value, np.ndarray):
        flat = value.reshape(-1)
        yield b"["
        for start in range(0, len(flat), PIECE):
            listed = _json(flat[start : start + PIECE])
            yield (b"," if start else b"") + listed[1:-1]
        yield b"]"
    else:  # a list
        yield b"["
        for i, item in enumerate(value):
            if i:
                yield b","
            yield from pieces(item)
        yield b"]"


async def serialised(value: Any) -> bytes:
    """`b"".join(pieces(value))`, the event loop running other work between pieces."""
    if _values(value) <= PIECE:
        return _json(value)
    out: list[bytes] = []
    turn = time.perf_counter()
    for piece in pieces(value):
        out.append(piece)
        if time.perf_counter() - turn > TURN:
            await checkpoint()
            turn = time.perf_counter()
    return b"".join(out)
