from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.deps import SessionsDep
from service.schemas import (
    CreateSessionRequest,
    GenerateRequest,
    SessionInfo,
    SetStateRequest,
    StepRequest,
    StepResponse,
)

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])


@router.post("", status_code=201, response_model=SessionInfo, response_model_exclude_none=True)
async def create_session(request: CreateSessionRequest, sessions: SessionsDep) -> SessionInfo:
    return await sessions.create(request)


@router.get("/{session_id}", response_model=SessionInfo, response_model_exclude_none=True)
async def get_session(
    session_id: str, sessions: SessionsDep, include_state: bool = False
) -> SessionInfo:
    return await sessions.get(session_id, include_state)


@router.post("/{session_id}/step", response_model=StepResponse, response_model_exclude_none=True)
async def step(session_id: str, request: StepRequest, sessions: SessionsDep) -> StepResponse:
    return await sessions.step(session_id, request)


@router.post(
    "/{session_id}/generate", response_model=StepResponse, response_model_exclude_none=True
)
async def generate(
    session_id: str, request: GenerateRequest, sessions: SessionsDep
) -> StepResponse:
    return await sessions.generate(session_id, request)


@router.put("/{session_id}/state", response_model=SessionInfo, response_model_exclude_none=True)
async def set_state(
    session_id: str, request: SetStateRequest, sessions: SessionsDep
) -> SessionInfo:
    return await sessions.set_state(session_id, request)


@router.post("/{session_id}/reset", response_model=SessionInfo, response_model_exclude_none=True)
async def reset(session_id: str, sessions: SessionsDep) -> SessionInfo:
    return await sessions.reset(session_id)


@router.delete("/{session_id}", status_code=204)
async def delete(session_id: str, sessions: SessionsDep) -> Response:
    await sessions.delete(session_id)
    return Response(status_code=204)
