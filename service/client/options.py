"""The optional body fields of the decoding calls, as keyword arguments mypy checks.
None leaves a field to the server's default. The wire models check the values again
at run time (service/wire/native.py, service/wire/decoding.py), before anything is sent."""

from __future__ import annotations

from typing import TypedDict

from service.wire.decoding import Strategy


class DecodingOptions(TypedDict, total=False):
    return_probabilities: bool | None
    strategy: Strategy | None
    beam_width: int | None
    length_penalty: float | None
    num_return_sequences: int | None
    temperature: float | None
    top_k: int | None
    top_p: float | None
    seed: int | None
    return_scores: bool | None


class PredictOptions(DecodingOptions, total=False):
    max_steps: int | None
