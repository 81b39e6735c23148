"""Route dependencies as `Annotated` aliases, and `ready` for the hot routes.

They are `async def` on purpose: FastAPI runs plain `def` dependencies in its thread
pool, a thread hop per dependency per request (measured: it cut /predict throughput
to a third).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.dataplane.health import loaded
from service.dataplane.predict import Predictor
from service.dataplane.session_ops import SessionOps
from service.inference.model.registry import Registry
from service.runtime import Runtime


def ready(request: Request) -> Runtime:
    """The runtime once models are loaded (503 before). Hot routes call this directly
    instead of declaring a dependency: FastAPI's dependency solving costs more per
    request than the rest of our request handling."""
    return loaded(request.app.state.runtime)


def registry(request: Request) -> Registry:
    loaded = ready(request).registry
    assert loaded is not None
    return loaded


def predictor(request: Request) -> Predictor:
    loaded = ready(request).predictor
    assert loaded is not None
    return loaded


def session_ops(request: Request) -> SessionOps:
    loaded = ready(request).sessions
    assert loaded is not None
    return loaded


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_registry(request: Request) -> Registry:
    return registry(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
