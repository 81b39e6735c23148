from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import RuntimeDep
from service.runtime import Runtime
from service.schemas import Health

router = APIRouter(tags=["health"])


def _unavailable(body: Health) -> JSONResponse:
    return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "1"})


def _failed(runtime: Runtime) -> Health | None:
    """A batch worker that ended cannot come back by itself: only a restart helps."""
    failures = runtime.engines.failures() if runtime.engines is not None else {}
    # which worker, not why: the exception (logged) may name internal paths
    stopped = {name: "batch worker stopped (details in the server log)" for name in failures}
    return Health(status="failed", detail={"failed": stopped}) if stopped else None


def _probe_failed(description: str, example: Health) -> dict[int | str, dict[str, Any]]:
    content = {"application/json": {"example": example.model_dump()}}
    return {503: {"model": Health, "description": description, "content": content}}


STOPPED = {"failed": {"reverse/1 predict": "batch worker stopped (details in the server log)"}}


@router.get(
    "/healthz",
    response_model=Health,
    responses=_probe_failed(
        "failed: a model's batch worker has stopped; only a restart helps",
        Health(status="failed", detail=STOPPED),
    ),
)
async def healthz(runtime: RuntimeDep) -> Health | JSONResponse:
    """Liveness: the process answers; 503 (status "failed") if a model's batch worker
    has stopped, which only a restart cures."""
    failed = _failed(runtime)
    return _unavailable(failed) if failed else Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses=_probe_failed(
        "loading, draining (shutting down) or failed (a batch worker stopped)",
        Health(status="loading", detail={"models": "loading"}),
    ),
)
async def readyz(runtime: RuntimeDep) -> Health | JSONResponse:
    """Readiness: 503 until every model is loaded, once shutdown has begun (status
    "draining") and if a batch worker has failed; otherwise 200, with status "degraded"
    while the session store is unreachable."""
    if runtime.draining:
        return _unavailable(
            Health(status="draining", detail={"shutdown": "finishing in-flight work"})
        )
    if runtime.registry is None:
        return _unavailable(Health(status="loading", detail={"models": "loading"}))
    failed = _failed(runtime)
    if failed:
        return _unavailable(failed)
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
                "queued_rows": b.queued_rows,
                "batches": s.batches,
                "jobs": s.jobs,
                "rows": s.rows,
                "largest_batch": s.largest,
                "mean_rows_per_batch": round(s.rows / s.batches, 2) if s.batches else 0.0,
            }
    return out
