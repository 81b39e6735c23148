"""The input of a V2 inference request: `tokens` (INT32 or INT64, [batch, length]) or,
where the model's source has a tokenizer, `text` (BYTES, [batch] or [batch, 1]), its
name, datatype and shape checked (the limits too) before its data is read."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.config import Settings
from service.dataplane.tensors import check_datatype, listed, read_input
from service.dataplane.tokens import TokensIn
from service.errors import InvalidInput, shown
from service.inference.model.interface import LoadedModel
from service.wire.oip import InferenceRequest

TOKENS, TEXT = "tokens", "text"
TOKEN_TYPES = ("INT32", "INT64")


def has_text(model: LoadedModel, side: str) -> bool:
    manifest = model.spec.manifest
    chosen = manifest.source if side == "source" else manifest.target
    return chosen.speaks_text


def input_names(model: LoadedModel) -> list[str]:
    return [TOKENS, TEXT] if has_text(model, "source") else [TOKENS]


def read_rows(
    model: LoadedModel, request: InferenceRequest, binary: bytes, settings: Settings
) -> list[TokensIn]:
    """The request's one input as sequences of token ids, or texts. Its name, datatype
    and shape are checked (against the limits too) before its data is read."""
    allowed = input_names(model)
    view, at = memoryview(binary), 0
    rows: list[TokensIn] | None = None
    for i, given in enumerate(request.inputs):
        field = f"inputs[{i}]"
        if given.name not in allowed:
            raise InvalidInput(
                f"{field}.name: {shown(given.name)} is not an input of '{model.spec.name}'; "
                f"allowed: {' or '.join(allowed)}",
                field=f"{field}.name",
            )
        if rows is not None:
            raise InvalidInput(
                f"inputs: give one input ({' or '.join(allowed)}), not several", field="inputs"
            )
        check_declared(given.name, given.datatype, given.shape, field, settings)
        values, at = read_input(given, field, view, at)
        rows = _token_rows(given.name, values, field)
    if at != len(view):
        raise InvalidInput(
            f"body: {len(view) - at} bytes of binary data after the JSON header that no input "
            "claims (parameters.binary_data_size)",
            field="body",
        )
    return rows if rows is not None else []


def check_declared(
    name: str, datatype: str, shape: list[int], field: str, settings: Settings
) -> None:
    """An input's datatype and shape as its name needs them, within the batch and
    sequence length limits."""
    check_datatype(datatype, field)
    if name == TOKENS:
        if datatype not in TOKEN_TYPES:
            raise InvalidInput(
                f"{field}.datatype: {shown(datatype)} for 'tokens'; allowed: "
                f"{', '.join(TOKEN_TYPES)}",
                field=f"{field}.datatype",
            )
        if len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
            raise InvalidInput(
                f"{field}.shape: {listed(shape)}; 'tokens' is [batch, length] with both at least 1",
                field=f"{field}.shape",
            )
    else:
        if datatype != "BYTES":
            raise InvalidInput(
                f"{field}.datatype: {shown(datatype)} for 'text'; allowed: BYTES",
                field=f"{field}.datatype",
            )
        if len(shape) not in (1, 2) or shape[1:] not in ([], [1]) or shape[0] < 1:
            raise InvalidInput(
                f"{field}.shape: {listed(shape)}; 'text' is [batch] or [batch, 1] with batch "
                "at least 1",
                field=f"{field}.shape",
            )
    if shape[0] > settings.max_batch_size:
        raise InvalidInput(
            f"{field}.shape: a batch of {shown(shape[0])} sequences exceeds the limit of "
            f"{settings.max_batch_size} (SERVICE_MAX_BATCH_SIZE)",
            field=f"{field}.shape",
        )
    if name == TOKENS and shape[1] > settings.max_sequence_length:
        raise InvalidInput(
            f"{field}.shape: {shown(shape[1])} tokens per sequence exceeds the limit of "
            f"{settings.max_sequence_length} (SERVICE_MAX_SEQUENCE_LENGTH)",
            field=f"{field}.shape",
        )


def _token_rows(name: str, values: Any, field: str) -> list[TokensIn]:
    """Checked by `check_declared`: tokens as a [batch, length] array, texts as bytes."""
    if name == TOKENS:
        rows: list[TokensIn] = values.astype(np.int64).tolist()
        return rows
    texts: list[TokensIn] = []
    for j, raw in enumerate(values):
        try:
            texts.append(raw.decode())
        except UnicodeDecodeError:
            raise InvalidInput(f"{field}[{j}]: not UTF-8 text", field=f"{field}[{j}]") from None
    return texts
