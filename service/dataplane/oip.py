"""The Open Inference Protocol on the shared dataplane: a V2 inference request is
translated into the same decode and session operations the native API uses, so every
check and limit applies unchanged.

Inputs: `tokens` (INT32 or INT64, [batch, length]) or, where the model's source has a
tokenizer, `text` (BYTES, [batch] or [batch, 1]). Outputs: `tokens` (INT64,
[batch, steps]; seq2seq rows that ended early are padded with the end token),
`probabilities` (FP32, [batch, steps, classes]; padding rows are zeros) when asked for,
and `text` (BYTES, [batch]) where the target has a tokenizer.

Sequences (Triton's sequence extension) are sessions: `sequence_id` names one, scoped to
the model and the API key; `sequence_start` creates it afresh, `sequence_end` deletes
it after answering. In a sequence (batch 1) a step model steps its `tokens`; a seq2seq
model encodes `tokens` as the source on start, then decodes `max_steps` further tokens
on every request without inputs, or steps the given target `tokens`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.config import Settings
from service.dataplane.oip_inputs import TEXT, TOKENS, has_text, input_names, read_rows
from service.dataplane.predict import Predictor
from service.dataplane.session_ops import SessionOps
from service.dataplane.tensors import Tensor
from service.dataplane.tokens import TokensIn, to_text
from service.dataplane.triton_sequences import sequence_step
from service.errors import InvalidInput, shown
from service.inference.model.interface import LoadedModel
from service.wire.native import (
    StepResponse,
)
from service.wire.oip import (
    InferenceRequest,
    ModelMetadata,
    RequestParameters,
    TensorMetadata,
)

PROBABILITIES = "probabilities"


def output_names(model: LoadedModel) -> list[str]:
    return [TOKENS, PROBABILITIES, TEXT] if has_text(model, "target") else [TOKENS, PROBABILITIES]


def model_metadata(model: LoadedModel, versions: Sequence[int]) -> ModelMetadata:
    classes = model.spec.manifest.output_cardinality
    shapes = {
        TOKENS: ("INT64", [-1, -1]),
        TEXT: ("BYTES", [-1]),
        PROBABILITIES: ("FP32", [-1, -1, classes]),
    }

    def tensors(names: list[str]) -> list[TensorMetadata]:
        return [TensorMetadata(name=n, datatype=shapes[n][0], shape=shapes[n][1]) for n in names]

    return ModelMetadata(
        name=model.spec.name,
        versions=[str(v) for v in versions],
        platform="keras",
        inputs=tensors(input_names(model)),
        outputs=tensors(output_names(model)),
    )


@dataclass(frozen=True)
class Wanted:
    names: list[str]  # in the order the client asked for them
    binary: set[str]  # those to send as binary data


def wanted(model: LoadedModel, request: InferenceRequest) -> Wanted:
    available = output_names(model)
    binary_default = bool(request.parameters and request.parameters.binary_data_output)
    if not request.outputs:
        names = [TOKENS, TEXT] if TEXT in available else [TOKENS]
        return Wanted(names, set(names) if binary_default else set())
    names, binary = [], set()
    for i, out in enumerate(request.outputs):
        if out.name not in available or out.name in names:
            why = (
                "is asked for twice"
                if out.name in names
                else f"is not an output of '{model.spec.name}'"
            )
            raise InvalidInput(
                f"outputs[{i}].name: {shown(out.name)} {why}; allowed: {', '.join(available)}",
                field=f"outputs[{i}].name",
            )
        names.append(out.name)
        flag = out.parameters.binary_data if out.parameters else None
        if flag or (flag is None and binary_default):
            binary.add(out.name)
    return Wanted(names, binary)


def _padded(rows: list[list[int]], pad: int) -> np.ndarray:
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), pad, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _tensors(
    model: LoadedModel,
    names: list[str],
    ids: list[list[int]],
    probabilities: list[list[list[float]]] | None,
) -> list[Tensor]:
    manifest = model.spec.manifest
    pad = manifest.end_id if manifest.end_id is not None else 0
    tokens = _padded(ids, pad)
    out = []
    for name in names:
        if name == TOKENS:
            out.append(Tensor(TOKENS, "INT64", tokens.shape, tokens))
        elif name == TEXT:
            texts = [(to_text(manifest, row) or "").encode() for row in ids]
            out.append(Tensor(TEXT, "BYTES", (len(texts),), texts))
        else:
            assert probabilities is not None
            width = manifest.output_cardinality
            probs = np.zeros((len(ids), tokens.shape[1], width), dtype=np.float32)
            for i, row in enumerate(probabilities):
                if row:
                    probs[i, : len(row)] = row
            out.append(Tensor(PROBABILITIES, "FP32", probs.shape, probs))
    return out


@dataclass(frozen=True)
class Read:
    """A V2 inference request read and checked against its model, before any decoding."""

    request: InferenceRequest
    wanted: Wanted
    rows: list[TokensIn]


def read_request(
    model: LoadedModel, request: InferenceRequest, binary: bytes, settings: Settings
) -> Read:
    """Synchronous and CPU-bound (a large input takes milliseconds): the API runs it
    in a worker thread for a large body."""
    out = wanted(model, request)
    return Read(request, out, read_rows(model, request, binary, settings))


@dataclass(frozen=True)
class Decoded:
    """Each row's output tokens and, if asked for, their probabilities."""

    ids: list[list[int]]
    probabilities: list[list[list[float]]] | None

    @property
    def values(self) -> int:
        """About how many values the answer carries (what its encoding costs)."""
        tokens = sum(len(row) for row in self.ids)
        width = next((len(row[0]) for row in self.probabilities or [] if row), 0)
        return tokens * (1 + width)


async def infer(
    predictor: Predictor,
    sessions: SessionOps,
    model: LoadedModel,
    read: Read,
    owner: str | None,
) -> Decoded:
    request, rows = read.request, read.rows
    params = request.parameters or RequestParameters()
    probs = PROBABILITIES in read.wanted.names
    if params.sequence_id in (None, 0, ""):
        if params.sequence_start or params.sequence_end:
            raise InvalidInput(
                "parameters: sequence_start and sequence_end need a sequence_id (a non-zero "
                "uint64 or a non-empty string)",
                field="parameters.sequence_id",
            )
        if not rows:
            raise InvalidInput(
                f"inputs: give one input ({' or '.join(input_names(model))})", field="inputs"
            )
        done = await predictor.decode(
            model, rows, params.max_steps, probs, field=request.inputs[0].name
        )
        return Decoded(done.ids, done.probabilities)
    assert params.sequence_id is not None
    step = await sequence_step(sessions, model, params, params.sequence_id, rows, probs, owner)
    return Decoded([_ids(model, step)], [step.probabilities or []] if probs else None)


def outputs(model: LoadedModel, read: Read, decoded: Decoded) -> list[Tensor]:
    """The output tensors asked for (CPU-bound for a large answer, as `read_request`)."""
    return _tensors(model, read.wanted.names, decoded.ids, decoded.probabilities)


def _ids(model: LoadedModel, step: StepResponse) -> list[int]:
    target = model.spec.manifest.target
    return [t if isinstance(t, int) else (target.id_of(t) or 0) for t in step.outputs]
