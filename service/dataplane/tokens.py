"""Token ids <-> wire tokens, and validation of what clients send."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from service.errors import InvalidInput, shown
from service.inference.base import ModelSpec
from service.inference.manifest import Manifest

Token = int | str
FLOAT32_MAX = float(np.finfo(np.float32).max)
STATE_VALUES = "finite float32 numbers (no NaN or infinity, |x| <= 3.4028235e38)"


def _allowed(manifest: Manifest) -> str:
    card = manifest.input.cardinality
    text = f"integers 0..{card - 1}"
    vocabulary = manifest.vocabulary
    if vocabulary:
        shown = ", ".join(repr(t) for t in vocabulary[:20])
        more = f", ... ({len(vocabulary)} in all)" if len(vocabulary) > 20 else ""
        text += f" or vocabulary tokens ({shown}{more})"
    return text


def to_ids(manifest: Manifest, tokens: Sequence[Token], field: str) -> list[int]:
    card = manifest.input.cardinality
    index = manifest.token_index
    ids: list[int] = []
    for j, token in enumerate(tokens):
        if isinstance(token, str):
            if index is None or token not in index:
                why = (
                    "is not in the vocabulary"
                    if index is not None
                    else ("is a string but the model has no vocabulary")
                )
                raise InvalidInput(
                    f"{field}[{j}]: token {shown(token)} {why}; allowed: {_allowed(manifest)}",
                    field=f"{field}[{j}]",
                )
            ids.append(index[token])
        elif 0 <= token < card:
            ids.append(token)
        else:
            raise InvalidInput(
                f"{field}[{j}]: token {shown(token)} is out of range; allowed: "
                f"{_allowed(manifest)}",
                field=f"{field}[{j}]",
            )
    return ids


def to_tokens(manifest: Manifest, ids: Sequence[int]) -> list[Token]:
    """A model with a vocabulary answers in its vocabulary; otherwise in ids."""
    if manifest.vocabulary:
        return [manifest.vocabulary[i] for i in ids]
    return list(ids)


def _check_nested(value: Any, shape: tuple[int, ...], field: str) -> None:
    if not shape:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(
                f"{field}: {shown(value)} is not a number; allowed: {STATE_VALUES}", field=field
            )
        # compared as Python numbers: an int beyond float range cannot overflow here
        if not (isinstance(value, int) or math.isfinite(value)) or abs(value) > FLOAT32_MAX:
            raise InvalidInput(
                f"{field}: {shown(value)} is out of range; allowed: {STATE_VALUES}", field=field
            )
        return
    if not isinstance(value, list) or len(value) != shape[0]:
        got = f"a list of {len(value)}" if isinstance(value, list) else type(value).__name__
        raise InvalidInput(
            f"{field}: expected a list of {shape[0]} (state shape {list(shape)}), got {got}",
            field=field,
        )
    for j, item in enumerate(value):
        _check_nested(item, shape[1:], f"{field}[{j}]")


def parse_states(
    spec: ModelSpec, raw: Sequence[Any], field: str = "state"
) -> tuple[np.ndarray, ...]:
    """Client state tensors (one sample) -> float32 arrays, checked against the model."""
    shapes = spec.state_shapes
    if len(raw) != len(shapes):
        raise InvalidInput(
            f"{field}: expected {len(shapes)} state tensors with shapes "
            f"{[list(s) for s in shapes]}, got {len(raw)}",
            field=field,
        )
    arrays = []
    for i, (tensor, shape) in enumerate(zip(raw, shapes, strict=True)):
        _check_nested(tensor, shape, f"{field}[{i}]")
        arrays.append(np.asarray(tensor, dtype=np.float64).astype(np.float32))
    return tuple(arrays)
