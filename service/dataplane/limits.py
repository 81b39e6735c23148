"""Per-request bounds, each naming the setting that sets it.

The work bound counts model steps (one recurrent step of one row: a source token
encoded, an input value fed, or a token decoded) summed over the request, and the
probability bound counts the floats a response would carry; both are checked before
any compute, from the worst case the request allows.
"""

from __future__ import annotations

from collections.abc import Sized

from service.config import Settings
from service.errors import InvalidInput, shown
from service.inference.model.interface import ModelSpec


def check_batch(batch: Sized, settings: Settings, field: str = "inputs") -> None:
    if len(batch) > settings.max_batch_size:
        raise InvalidInput(
            f"{field}: batch of {len(batch)} sequences exceeds the limit of "
            f"{settings.max_batch_size} (SERVICE_MAX_BATCH_SIZE)",
            field=field,
        )


def check_length(tokens: Sized, settings: Settings, field: str) -> None:
    limit = settings.max_sequence_length
    if len(tokens) > limit:
        raise InvalidInput(
            f"{field}: {len(tokens)} tokens exceeds the limit of {limit} "
            "(SERVICE_MAX_SEQUENCE_LENGTH)",
            field=field,
        )


def check_max_steps(value: int | None, default: int, settings: Settings) -> int:
    steps = default if value is None else value
    limit = settings.max_decode_steps
    if not 1 <= steps <= limit:
        raise InvalidInput(
            f"max_steps: {shown(steps)} is out of range; allowed: 1..{limit} "
            "(SERVICE_MAX_DECODE_STEPS)",
            field="max_steps",
        )
    return steps


def decode_steps(spec: ModelSpec, value: int | None, settings: Settings) -> int | None:
    """How many steps a decode from a source may run: `value` (or the model's default)
    within SERVICE_MAX_DECODE_STEPS. None for a step model, which refuses a max_steps:
    it predicts once per input value."""
    if spec.manifest.kind == "seq2seq":
        steps = check_max_steps(value, spec.manifest.max_steps, settings)
        if spec.window is not None and steps > spec.window:
            raise InvalidInput(
                f"max_steps: {steps} is out of range for '{spec.name}', whose Transformer "
                f"decoder reads at most {spec.window} target positions; allowed: "
                f"1..{spec.window}",
                field="max_steps",
            )
        return steps
    if value is not None:
        raise InvalidInput(
            f"max_steps: not used by '{spec.name}' (a step model predicts once per input "
            "value); omit it",
            field="max_steps",
        )
    return None


def check_work(
    settings: Settings,
    *,
    steps: int,
    what: str,
    field: str,
    outputs: int,
    width: int | None,
) -> None:
    """`steps`: model steps the request may run (`what` says how they add up);
    `outputs` x `width`: probabilities it may return (`width` None: none asked for)."""
    if steps > settings.max_steps_per_request:
        raise InvalidInput(
            f"{field}: this request needs up to {steps:,} model steps ({what}); the limit is "
            f"{settings.max_steps_per_request:,} per request (SERVICE_MAX_STEPS_PER_REQUEST): "
            "send fewer or shorter sequences, or a smaller max_steps",
            field=field,
        )
    if width is not None and outputs * width > settings.max_probabilities_per_request:
        raise InvalidInput(
            f"return_probabilities: the answer would carry up to {outputs * width:,} "
            f"probabilities ({outputs:,} outputs x {width} each); the limit is "
            f"{settings.max_probabilities_per_request:,} per request "
            "(SERVICE_MAX_PROBABILITIES_PER_REQUEST): ask for fewer outputs, or omit "
            "return_probabilities",
            field="return_probabilities",
        )
