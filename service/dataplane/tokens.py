"""Token ids <-> wire tokens, and validation of what clients send."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from service.config import Settings
from service.dataplane.limits import check_length
from service.errors import InvalidInput, shown
from service.inference.model.interface import ModelSpec
from service.inference.model.manifest import Manifest
from service.inference.model.manifest_parts import Side

Token = int | str
FLOAT32_MAX = float(np.finfo(np.float32).max)
STATE_VALUES = "finite float32 numbers (no NaN or infinity, |x| <= 3.4028235e38)"


TokensIn = Sequence[Token] | str


def _allowed(side: Side) -> str:
    text = f"integers 0..{side.size - 1}"
    vocabulary = side.vocabulary
    if vocabulary:
        listed = ", ".join(repr(t) for t in vocabulary[:20])
        more = f", ... ({len(vocabulary)} in all)" if len(vocabulary) > 20 else ""
        text += f" or vocabulary tokens ({listed}{more})"
    return text


def read_ids(side: Side, value: TokensIn, field: str, what: str, settings: Settings) -> list[int]:
    """A client's tokens or text -> ids on one side, within SERVICE_MAX_SEQUENCE_LENGTH
    (counted in tokens, after text is split)."""
    tokens = tokens_of(side, value, field, what)
    check_length(tokens, settings, field)
    return to_ids(side, tokens, field, what, isinstance(value, str))


def tokens_of(side: Side, value: TokensIn, field: str, what: str) -> Sequence[Token]:
    """A client's tokens as they are, or its text split into the side's tokens (one per
    character, or per word)."""
    if not isinstance(value, str):
        return value
    text = value
    if not side.speaks_text:
        raise InvalidInput(
            f"{field}: text is accepted only where the model's {what} declares a tokenizer; "
            f"send a list of tokens ({_allowed(side)})",
            field=field,
        )
    pieces = list(text) if side.tokenizer == "char" else text.split()
    if not pieces:
        raise InvalidInput(f"{field}: the text has no tokens", field=field)
    return pieces


def to_ids(
    side: Side, tokens: Sequence[Token], field: str, what: str = "source", text: bool = False
) -> list[int]:
    """Tokens (split from text if `text`) -> ids on one side; unknown tokens map to
    `unk_token` or are a 422 naming the position and the token."""
    unknown = side.id_of(side.unk_token) if side.unk_token is not None else None
    ids: list[int] = []
    for j, token in enumerate(tokens):
        if isinstance(token, str):
            found = side.id_of(token)
            if found is None:
                found = unknown
            if found is None:
                where = (
                    f"{field}: {'character' if side.tokenizer == 'char' else 'token'} "
                    if text
                    else f"{field}[{j}]: token "
                )
                why = (
                    f"is not in the {what} vocabulary"
                    if side.vocabulary is not None
                    else "is a string but the model has no vocabulary"
                )
                at = f" at position {j}" if text else ""
                raise InvalidInput(
                    f"{where}{shown(token)}{at} {why}; allowed: {_allowed(side)}",
                    field=f"{field}[{j}]",
                )
            ids.append(found)
        elif 0 <= token < side.size:
            ids.append(token)
        else:
            raise InvalidInput(
                f"{field}[{j}]: token {shown(token)} is out of range; allowed: {_allowed(side)}",
                field=f"{field}[{j}]",
            )
    return ids


def source_ids(manifest: Manifest, value: TokensIn, field: str, settings: Settings) -> list[int]:
    """A source as the encoder takes it: ids, right-padded to `source.length` if set."""
    side = manifest.source
    ids = read_ids(side, value, field, "source", settings)
    length = side.length
    if length is None:
        return ids
    if len(ids) > length:
        raise InvalidInput(
            f"{field}: {len(ids)} tokens, but '{field}' may have at most {length} (the model "
            f"was trained on sources of {length}: source.length)",
            field=field,
        )
    assert side.pad_token is not None  # the manifest requires it with a length
    pad = side.id_of(side.pad_token)
    assert pad is not None
    return ids + [pad] * (length - len(ids))


def to_tokens(side: Side, ids: Sequence[int]) -> list[Token]:
    """A side with a vocabulary answers in its vocabulary; otherwise in ids."""
    if side.vocabulary:
        return [side.vocabulary[i] for i in ids]
    return list(ids)


def to_text(manifest: Manifest, ids: Sequence[int]) -> str | None:
    """Target ids as text, without start, end and pad tokens (None: no tokenizer)."""
    side = manifest.target
    if not side.speaks_text or side.vocabulary is None:
        return None
    pad = side.id_of(side.pad_token) if side.pad_token is not None else None
    dropped = {manifest.start_id, manifest.end_id, pad}
    words = [side.vocabulary[i] for i in ids if i not in dropped]
    return ("" if side.tokenizer == "char" else " ").join(words)


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
    problem = prefix_problem(spec, arrays)
    if problem is not None:
        raise InvalidInput(f"{field}: {problem}", field=field)
    return tuple(arrays)


def prefix_problem(spec: ModelSpec, states: Sequence[np.ndarray]) -> str | None:
    """A Transformer decoder's state: the target tokens so far (ids, then 0s) and their
    count, at most its window (None: fine, or not a Transformer decoder)."""
    if spec.window is None:
        return None
    card = spec.manifest.target.size
    tokens, count = states[0], states[1].reshape(-1)[0]
    if not (np.all(np.mod(tokens, 1) == 0) and np.all((tokens >= 0) & (tokens < card))):
        return f"state 0 (the target tokens so far) must hold token ids in 0..{card - 1}"
    if count % 1 != 0 or not 0 <= count <= spec.window:
        return (
            "state 1 (the number of target tokens so far) must be a whole number in "
            f"0..{spec.window}"
        )
    return None
