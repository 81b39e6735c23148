"""GET /metrics: Prometheus's text format (definitions in
service/observability/metrics.py). With API keys on it needs a key, like /v1/stats,
unless SERVICE_PROTECT_STATS=false."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.deps import RuntimeDep
from service.observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """HTTP requests, batching, decode steps, sessions, the session store and model
    versions; see docs/observability.md."""
    return Response(await runtime.scrape(), media_type=CONTENT_TYPE)
