"""The native API's model routes: the list, a model's details (TF Serving's model
status too: it carries `model_version_status`), a version's details."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import RegistryDep
from service.api.docs.responses import errors
from service.api.paths import PathSegment  # and the {...:segment} path convertor
from service.dataplane import model_info
from service.wire.model_info import ModelDetail, ModelList, ModelVersionInfo

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelList, responses=errors(503))
async def list_models(registry: RegistryDep) -> ModelList:
    return model_info.model_list(registry)


@router.get("/{name:segment}", response_model=ModelDetail, responses=errors(404, 503))
async def model_detail(name: PathSegment, registry: RegistryDep) -> ModelDetail:
    return model_info.model_detail(registry, name)


@router.get(
    "/{name:segment}/versions/{version:segment}",
    response_model=ModelVersionInfo,
    responses=errors(404, 503),
)
async def version_detail(
    name: PathSegment, version: PathSegment, registry: RegistryDep
) -> ModelVersionInfo:
    return model_info.version_detail(registry, name, version)
