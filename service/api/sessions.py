from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api.body import documented, parse
from service.api.deps import ready
from service.api.json import json_response
from service.api.responses import errors
from service.dataplane.sessions import SessionOps
from service.schemas import (
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
# a change to a session: load -> compute -> save
CHANGE = errors(404, 409, 410, 413, 422, 503)


def _sessions(request: Request) -> SessionOps:
    sessions = ready(request).sessions
    assert sessions is not None
    return sessions


@router.post(
    "",
    status_code=201,
    openapi_extra=documented(CreateSessionRequest),
    responses=errors(404, 413, 422, 429, 503),
    **INFO,  # type: ignore[arg-type]
)
async def create_session(request: Request) -> Response:
    body = await parse(request, CreateSessionRequest)
    return json_response(await _sessions(request).create(body), status_code=201)


@router.get("/{session_id}", responses=errors(404, 410, 422, 503), **INFO)  # type: ignore[arg-type]
async def get_session(session_id: str, request: Request, include_state: bool = False) -> Response:
    return json_response(await _sessions(request).get(session_id, include_state))


@router.post(
    "/{session_id}/step",
    openapi_extra=documented(StepRequest),
    responses=CHANGE,
    **STEP,  # type: ignore[arg-type]
)
async def step(session_id: str, request: Request) -> Response:
    body = await parse(request, StepRequest)
    return json_response(await _sessions(request).step(session_id, body))


@router.post(
    "/{session_id}/generate",
    openapi_extra=documented(GenerateRequest),
    responses=CHANGE,
    **STEP,  # type: ignore[arg-type]
)
async def generate(session_id: str, request: Request) -> Response:
    body = await parse(request, GenerateRequest, empty_ok=True)
    return json_response(await _sessions(request).generate(session_id, body))


@router.put(
    "/{session_id}/state",
    openapi_extra=documented(SetStateRequest),
    responses=CHANGE,
    **INFO,  # type: ignore[arg-type]
)
async def set_state(session_id: str, request: Request) -> Response:
    body = await parse(request, SetStateRequest)
    return json_response(await _sessions(request).set_state(session_id, body))


@router.post("/{session_id}/reset", responses=errors(404, 409, 410, 503), **INFO)  # type: ignore[arg-type]
async def reset(session_id: str, request: Request) -> Response:
    return json_response(await _sessions(request).reset(session_id))


@router.delete("/{session_id}", status_code=204, responses=errors(404, 503))
async def delete(session_id: str, request: Request) -> Response:
    await _sessions(request).delete(session_id)
    return Response(status_code=204)
