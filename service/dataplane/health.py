"""Liveness and readiness, decided once for every protocol (the native probes and the
Open Inference Protocol's health routes), and "the models are still loading"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.errors import NotReady, ServiceError
from service.wire.native import Health

if TYPE_CHECKING:
    from service.runtime import Runtime

STILL_LOADING = "models are still loading"


def loaded(runtime: Runtime) -> Runtime:
    """The runtime once its models are loaded; NotReady (retry in a second) before."""
    if runtime.registry is None:
        raise NotReady(STILL_LOADING, retry_after=1)
    return runtime


def _failed(runtime: Runtime) -> Health | None:
    """A batch worker that ended cannot come back by itself: only a restart helps."""
    failures = runtime.engines.failures() if runtime.engines is not None else {}
    # which worker, not why: the exception (logged) may name internal paths
    stopped = {name: "batch worker stopped (details in the server log)" for name in failures}
    return Health(status="failed", detail={"failed": stopped}) if stopped else None


def liveness(runtime: Runtime) -> tuple[Health, bool]:
    """The process answers; not alive (False) once a model's batch worker has stopped."""
    failed = _failed(runtime)
    return (failed, False) if failed else (Health(status="ok"), True)


async def readiness(runtime: Runtime, counted: bool = True) -> tuple[Health, bool]:
    """Ready (True) once every model is loaded and until shutdown begins, unless a batch
    worker has failed; "degraded" but ready while the session store is unreachable.
    `counted`: the live sessions are counted into the detail."""
    if runtime.draining:
        return Health(status="draining", detail={"shutdown": "finishing in-flight work"}), False
    if runtime.registry is None:
        return Health(status="loading", detail={"models": "loading"}), False
    failed = _failed(runtime)
    if failed:
        return failed, False
    registry = runtime.registry
    models = {name: [str(v) for v in registry.versions(name)] for name in registry.names()}
    problem = await runtime.store.health()
    sessions = None
    if problem is None and counted:
        try:
            sessions = await runtime.store.count()
        except ServiceError:  # e.g. one Redis Cluster shard down: its partitions unreadable
            problem = "unavailable"
    if problem is not None:
        # /predict still works, so the replica stays in rotation: taking it out would
        # turn a session-store outage into a total one. Session calls answer 503.
        return Health(status="degraded", detail={"models": models, "session_store": problem}), True
    if not counted:
        return Health(status="ready"), True
    return Health(
        status="ready", detail={"models": models, "session_store": "ok", "sessions": sessions}
    ), True
