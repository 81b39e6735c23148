from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import RuntimeDep
from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(runtime: RuntimeDep) -> Health | JSONResponse:
    """Readiness: 503 until every model is loaded; then 200, with status "degraded"
    while the session store is unreachable."""
    if runtime.registry is None:
        body = Health(status="loading", detail={"models": "loading"})
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "1"})
    models = {
        name: [str(v) for v in runtime.registry.versions(name)] for name in runtime.registry.names()
    }
    problem = await runtime.store.health()
    if problem is not None:
        # /predict still works, so the replica stays in rotation: taking it out would
        # turn a session-store outage into a total one. Session calls answer 503.
        return Health(status="degraded", detail={"models": models, "session_store": problem})
    return Health(
        status="ready",
        detail={"models": models, "session_store": "ok", "sessions": await runtime.store.count()},
    )


@router.get("/v1/stats", response_model=dict[str, Any])
async def stats(runtime: RuntimeDep) -> dict[str, Any]:
    """Batching counters per model version and operation since start."""
    if runtime.engines is None:
        return {}
    out: dict[str, Any] = {}
    for engine in runtime.engines.all():
        for b in engine.batchers:
            s = b.stats
            out[b.name] = {
                "batches": s.batches,
                "jobs": s.jobs,
                "rows": s.rows,
                "largest_batch": s.largest,
                "mean_rows_per_batch": round(s.rows / s.batches, 2) if s.batches else 0.0,
            }
    return out
