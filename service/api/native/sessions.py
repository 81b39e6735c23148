from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from service.api.bodies.read import documented, parse
from service.api.bodies.write import json_response
from service.api.deps import session_ops
from service.api.docs.responses import errors
from service.api.middleware.auth import owner_of
from service.api.native import sse
from service.dataplane.idempotency import Answer, Idempotency, idempotency
from service.dataplane.streams import stream_generate
from service.errors import InvalidInput
from service.wire.native import (
    CreateSessionRequest,
    GenerateRequest,
    SessionInfo,
    SetStateRequest,
    StepRequest,
    StepResponse,
)

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
INFO = {"response_model": SessionInfo, "response_model_exclude_none": True}
STEP = {"response_model": StepResponse, "response_model_exclude_none": True}
# a change to a session: load -> compute -> save (404, 413 and 422 as every route with a
# path parameter, a body or a header: service/api/docs/openapi.py)
CHANGE = errors(409, 410, 503)


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "a new key per change; a retry with the same key gets the first "
    "answer and applies nothing again (the same key with another body: 422)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}


def _idempotency(request: Request, operation: str, body: BaseModel | None) -> Idempotency | None:
    canonical = b"" if body is None else body.model_dump_json().encode()
    return idempotency(request.headers.get("idempotency-key"), operation, canonical)


def _answer(answer: Answer) -> Response:
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return Response(answer.body, 200, headers, media_type="application/json")


def _keyed(model: type[BaseModel] | None = None, required: bool = True) -> dict[str, Any]:
    extra: dict[str, Any] = documented(model, required) if model is not None else {}
    return {**extra, "parameters": [IDEMPOTENCY_KEY]}


# what a session's id leads to (OpenAPI links: clients and schemathesis follow them)
OPERATIONS = {
    "get": "get_session",
    "step": "step_session",
    "generate": "generate_session",
    "set_state": "set_session_state",
    "reset": "reset_session",
    "delete": "delete_session",
}
LINKS = {
    name: {"operationId": operation, "parameters": {"session_id": "$response.body#/session_id"}}
    for name, operation in OPERATIONS.items()
}
REPLAYED = {
    "Idempotent-Replayed": {
        "description": "true: the stored answer to an earlier request with this Idempotency-Key",
        "schema": {"enum": ["true"]},
    }
}
# a change that can be retried with an Idempotency-Key
KEYED = {**CHANGE, 200: {"description": "Successful Response", "headers": REPLAYED}}


@router.post(
    "",
    status_code=201,
    openapi_extra=documented(CreateSessionRequest),
    responses={201: {"description": "created", "links": LINKS}, **errors(404, 429, 503)},
    operation_id="create_session",
    **INFO,  # type: ignore[arg-type]
)
async def create_session(request: Request) -> Response:
    body = await parse(request, CreateSessionRequest)
    info = await session_ops(request).create(body, owner_of(request))
    return json_response(info, status_code=201)


@router.get(
    "/{session_id}",
    responses=errors(410, 503),
    operation_id=OPERATIONS["get"],
    **INFO,  # type: ignore[arg-type]
)
async def get_session(session_id: str, request: Request, include_state: bool = False) -> Response:
    info = await session_ops(request).get(session_id, include_state, owner_of(request))
    return json_response(info)


@router.post(
    "/{session_id}/step",
    openapi_extra=_keyed(StepRequest),
    responses=KEYED,
    operation_id=OPERATIONS["step"],
    **STEP,  # type: ignore[arg-type]
)
async def step(session_id: str, request: Request) -> Response:
    body = await parse(request, StepRequest)
    keyed = _idempotency(request, "step", body)
    return _answer(await session_ops(request).step(session_id, body, owner_of(request), keyed))


@router.post(
    "/{session_id}/generate",
    openapi_extra=_keyed(GenerateRequest, required=False),  # an empty body: {}
    responses={**KEYED, 200: {**KEYED[200], **sse.documented("StepResponse")[200]}},
    operation_id=OPERATIONS["generate"],
    **STEP,  # type: ignore[arg-type]
)
async def generate(session_id: str, request: Request) -> Response:
    body = await parse(request, GenerateRequest, empty_ok=True)
    keyed = _idempotency(request, "generate", body)
    if body.stream:
        if keyed is not None:
            raise InvalidInput(
                'Idempotency-Key: not with "stream": true (a stream cannot be replayed); '
                "omit the header, or the stream",
                field="stream",
            )
        connection = sse.Connection()
        ops = session_ops(request)
        events = stream_generate(ops, session_id, body, owner_of(request), connection.alive)
        return await sse.start(events, connection)
    answer = await session_ops(request).generate(session_id, body, owner_of(request), keyed)
    return _answer(answer)


@router.put(
    "/{session_id}/state",
    openapi_extra=_keyed(SetStateRequest),
    responses=KEYED,
    operation_id=OPERATIONS["set_state"],
    **INFO,  # type: ignore[arg-type]
)
async def set_state(session_id: str, request: Request) -> Response:
    body = await parse(request, SetStateRequest)
    keyed = _idempotency(request, "state", body)
    answer = await session_ops(request).set_state(session_id, body, owner_of(request), keyed)
    return _answer(answer)


@router.post(
    "/{session_id}/reset",
    openapi_extra=_keyed(),
    responses=KEYED,
    operation_id=OPERATIONS["reset"],
    **INFO,  # type: ignore[arg-type]
)
async def reset(session_id: str, request: Request) -> Response:
    keyed = _idempotency(request, "reset", None)
    return _answer(await session_ops(request).reset(session_id, owner_of(request), keyed))


@router.delete(
    "/{session_id}",
    status_code=204,
    responses=errors(410, 503),
    operation_id=OPERATIONS["delete"],
)
async def delete(session_id: str, request: Request) -> Response:
    await session_ops(request).delete(session_id, owner_of(request))
    return Response(status_code=204)
