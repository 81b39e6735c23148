"""Operator routes: with API keys on, only the keys named in SERVICE_ADMIN_KEYS may
use them (others get 403 `forbidden`; none named: no key may)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.deps import RuntimeDep
from service.api.middleware.auth import require_admin
from service.wire.model_info import ModelVersionRef, RefusedEntry, ReloadResponse
from service.wire.native import ErrorBody

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])

_RESPONSES: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorBody, "description": "the app was given its models, not a model store"},
    503: {"model": ErrorBody, "description": "models still loading; Retry-After"},
}


@router.post("/reload", response_model=ReloadResponse, responses=_RESPONSES)
async def reload(runtime: RuntimeDep) -> ReloadResponse:
    """Rescan the model store now, as the poll every SERVICE_MODEL_POLL_SECONDS does: new
    versions are loaded and warmed up before they are served, removed ones unloaded once
    their queued work is done. Answers when done, with what changed."""
    report = await runtime.reload()
    return ReloadResponse(
        loaded=[ModelVersionRef(model=n, version=str(v)) for n, v in report.loaded],
        unloaded=[ModelVersionRef(model=n, version=str(v)) for n, v in report.unloaded],
        failed=[
            RefusedEntry(model=r.model, version=r.version, error=r.error) for r in report.refused
        ],
        store_error=report.store_error,
    )
