"""A large V2 JSON request judged by its first bytes, before the whole is parsed.

Parsing JSON holds the GIL however it is run (pydantic-core, like `json`, never lets
go of it): 4 MB of numbers hold it ~100 ms, in a worker thread too, and the event loop
waits that long. So the start of the body is parsed first (a few KB, partially), and
an input declared beyond the limits, or holding more values than its shape, is refused
from there with the message the whole request would get. Only what the prefix holds
complete is judged: every value but the last one open at each level (a cut number or
list could look smaller than it is). A request the prefix cannot judge is parsed whole.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from pydantic_core import from_json

from service.config import Settings
from service.dataplane.oip_inputs import check_declared, input_names
from service.dataplane.tensors import MAX_DIMENSIONS, flat_values, miscounted
from service.inference.model.interface import LoadedModel

PREFIX = 16 * 1024  # bytes: ~0.2 ms to parse


def check_prefix(model: LoadedModel, header: bytes, settings: Settings) -> None:
    if len(header) <= PREFIX:
        return
    try:
        start = from_json(header[:PREFIX], allow_partial=True)
    except ValueError:
        return  # the whole parse says what is wrong
    if not isinstance(start, dict) or not isinstance(start.get("inputs"), list):
        return
    inputs: list[Any] = start["inputs"]
    open_inputs = _last_key(start) == "inputs"
    for i, given in enumerate(inputs):
        if isinstance(given, dict):
            still_open = open_inputs and i == len(inputs) - 1
            _check_input(model, given, still_open, f"inputs[{i}]", settings)


def _last_key(mapping: dict[str, Any]) -> str | None:
    return next(reversed(mapping), None)


def _check_input(
    model: LoadedModel, given: dict[str, Any], still_open: bool, field: str, settings: Settings
) -> None:
    last = _last_key(given) if still_open else None
    name, datatype, shape = (given.get(k) if k != last else None for k in _DECLARED)
    if not isinstance(name, str) or name not in input_names(model):
        return
    if not isinstance(datatype, str) or not _is_shape(shape):
        return
    check_declared(name, datatype, shape, field, settings)
    data = given.get("data")
    if isinstance(data, list) and flat_values(data, math.prod(shape)) is None:
        raise miscounted(field, shape, None)  # a cut list only grows


_DECLARED = ("name", "datatype", "shape")


def _is_shape(shape: Any) -> TypeGuard[list[int]]:
    return (
        isinstance(shape, list)
        and len(shape) <= MAX_DIMENSIONS
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    )
