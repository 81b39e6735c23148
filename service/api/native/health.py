"""The probes and the batching counters. With API keys on, the probes answer anyone
(probes carry no key) but say only their status, unless the request carries a valid
key: the models, their versions, the session count and a stopped worker's name are
for the service's own clients."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.api.deps import RuntimeDep
from service.api.errors import retry_header
from service.api.middleware.auth import authenticated
from service.dataplane.health import liveness, readiness
from service.wire.native import Health

router = APIRouter(tags=["health"])


def _unavailable(body: Health) -> JSONResponse:
    return JSONResponse(body.model_dump(), status_code=503, headers=retry_header(1))


def _answer(request: Request, body: Health, available: bool) -> Health | JSONResponse:
    """200 or 503 (`available`); the status alone for a request without a valid key
    while keys are on."""
    if not authenticated(request):
        body = Health(status=body.status)
    return body if available else _unavailable(body)


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
async def healthz(runtime: RuntimeDep, request: Request) -> Health | JSONResponse:
    """Liveness: the process answers; 503 (status "failed") if a model's batch worker
    has stopped, which only a restart cures. With API keys on, `detail` only for a
    request with a valid key."""
    body, alive = liveness(runtime)
    return _answer(request, body, alive)


@router.get(
    "/readyz",
    response_model=Health,
    responses=_probe_failed(
        "loading, draining (shutting down) or failed (a batch worker stopped)",
        Health(status="loading", detail={"models": "loading"}),
    ),
)
async def readyz(runtime: RuntimeDep, request: Request) -> Health | JSONResponse:
    """Readiness: 503 until every model is loaded, once shutdown has begun (status
    "draining") and if a batch worker has failed; otherwise 200, with status "degraded"
    while the session store is unreachable. With API keys on, `detail` (models,
    session store, sessions) only for a request with a valid key."""
    body, ready = await readiness(runtime, counted=authenticated(request))
    return _answer(request, body, ready)


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
