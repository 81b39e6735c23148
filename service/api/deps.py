"""Route dependencies as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.dataplane.sessions import SessionOps
from service.errors import NotReady
from service.inference.engine import Engines
from service.inference.registry import Registry
from service.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_registry(request: Request) -> Registry:
    registry = get_runtime(request).registry
    if registry is None:
        raise NotReady("models are still loading", headers={"Retry-After": "1"})
    return registry


def get_sessions(request: Request) -> SessionOps:
    get_registry(request)
    sessions = get_runtime(request).sessions
    assert sessions is not None
    return sessions


def get_engines(request: Request) -> Engines:
    get_registry(request)
    engines = get_runtime(request).engines
    assert engines is not None
    return engines


def get_settings(request: Request) -> Settings:
    return get_runtime(request).settings


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SessionsDep = Annotated[SessionOps, Depends(get_sessions)]
EnginesDep = Annotated[Engines, Depends(get_engines)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
