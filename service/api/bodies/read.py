"""Request bodies parsed straight from bytes by pydantic-core.

`Model.model_validate_json(raw)` parses and validates in one pass in Rust; FastAPI's
default path (`json.loads`, then validation of the Python objects) costs the event
loop about twice as much per request. Validation errors take the same route as
FastAPI's own, so every 422 keeps one shape. Any content type is accepted.
A body over SMALL_BODY is parsed in the worker thread (service/api/bodies/offload.py).
"""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from service.api.bodies.offload import SMALL_BODY, off_loop

Model = TypeVar("Model", bound=BaseModel)


async def parse(request: Request, model: type[Model], empty_ok: bool = False) -> Model:
    """`empty_ok`: an empty body means `{}` (for bodies whose fields are all optional).
    A large body is parsed in a worker thread (service/api/bodies/offload.py)."""
    raw = await request.body()
    if empty_ok and not raw.strip():
        raw = b"{}"
    return await off_loop(len(raw) <= SMALL_BODY, parse_bytes, raw, model)


EXPLAINED = 20  # errors whose message is worked on; the error answer shows the first 5


def parse_bytes(raw: bytes, model: type[Model]) -> Model:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)  # a body can hold 100,000s of errors
        located = [_explained(model, e) for e in errors[:EXPLAINED]]
        located += [{**e, "loc": ("body", *e["loc"])} for e in errors[EXPLAINED:]]
        raise RequestValidationError(located) from None


def _explained(model: type[BaseModel], error: Any) -> Any:
    """The error located in the body; an unknown field's message lists the known ones."""
    loc = error["loc"]
    if error["type"] == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        if known:
            error = {**error, "msg": f"not a known field; allowed: {', '.join(known)}"}
    return {**error, "loc": ("body", *loc)}


def _fields_at(model: type[BaseModel], path: tuple[int | str, ...]) -> list[str]:
    """The field names of the object at `path` inside `model` (empty if not a model)."""
    current: Any = model
    for part in path:
        if isinstance(part, int):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[0] if args else None
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        current = _unwrap(fields[part].annotation)
    current = _unwrap(current)
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def documented(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """`openapi_extra` that documents `model` as the JSON request body (the models it
    refers to, in `$defs`, become components: service/api/docs/openapi.py)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content}}
