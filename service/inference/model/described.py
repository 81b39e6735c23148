"""Model tensors as descriptions (name, shape, dtype), with no TensorFlow: the encoder's
input checked against the manifest's source, and the advice given when the roles of a
model's tensors cannot be told apart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

from service.inference.model.manifest import Manifest, ManifestError

Shape = tuple[int | None, ...]


class Described(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> Shape: ...
    @property
    def dtype(self) -> str: ...


def describe(tensors: Sequence[Described]) -> str:
    return ", ".join(f"{t.name} {list(t.shape)}" for t in tensors)


def is_token(t: Described, encoding: str, card: int, any_length: bool = False) -> bool:
    steps_fit = any_length or t.shape[1:2] in ((None,), (1,))
    if encoding == "one_hot":
        return len(t.shape) == 3 and steps_fit and t.shape[2] == card
    return len(t.shape) == 2 and steps_fit


def expected(encoding: str, card: int) -> str:
    return f"(batch, time, {card}) one-hot" if encoding == "one_hot" else "(batch, time) ids"


def check_source(manifest: Manifest, inputs: Sequence[Described]) -> None:
    side = manifest.source
    if len(inputs) != 1:
        raise ManifestError(
            f"the encoder must take one input (the source); it takes {describe(inputs)}"
        )
    shape = inputs[0].shape
    if not is_token(inputs[0], side.encoding, side.size, any_length=True):
        raise ManifestError(
            f"encoder input {inputs[0].name} {list(shape)} does not fit the manifest's source "
            f"(expected {expected(side.encoding, side.size)})"
        )
    if side.length is not None and shape[1] not in (None, side.length):
        raise ManifestError(
            f"encoder input {inputs[0].name} {list(shape)} has {shape[1]} time steps, the "
            f"manifest's source.length is {side.length}"
        )


def advice(
    problem: str,
    manifest: Manifest,
    dec_in: Sequence[Described],
    dec_out: Sequence[Described],
    enc_out: Sequence[Described],
) -> str:
    what = "decoder" if manifest.kind == "seq2seq" else "step model"
    lines = [f"cannot tell the model's tensors apart: {problem}."]
    if enc_out:
        lines.append(f"encoder outputs: {describe(enc_out)}.")
    lines.append(f"{what} inputs: {describe(dec_in)}; outputs: {describe(dec_out)}.")
    example = {
        "decoder_inputs": ["token", *(["memory"] if enc_out else []), "state"],
        "decoder_outputs": ["probabilities", "state"],
    }
    lines.append(
        'Name them in model.json, one role per tensor in order, e.g. "roles": '
        f"{json.dumps(example)} (encoder_outputs: memory|state|ignore; decoder_inputs: "
        "token|memory|state; decoder_outputs: probabilities|state|ignore)"
    )
    return " ".join(lines)
