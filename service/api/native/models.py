from __future__ import annotations

from fastapi import APIRouter

from service.api import paths  # noqa: F401 - registers the {...:segment} path convertor
from service.api.deps import RegistryDep
from service.api.docs.responses import errors
from service.dataplane.tfserving import available, version_statuses
from service.inference.model.interface import ModelSpec
from service.wire.native import (
    FailedVersion,
    ModelDetail,
    ModelList,
    ModelSummary,
    ModelVersionInfo,
    ModelVersionStatus,
    SideInfo,
)

router = APIRouter(prefix="/v1/models", tags=["models"])


def _version_info(spec: ModelSpec, statuses: list[ModelVersionStatus]) -> ModelVersionInfo:
    m = spec.manifest
    shared = m.source.vocabulary if m.source.vocabulary == m.target.vocabulary else None
    return ModelVersionInfo(
        name=spec.name,
        version=str(spec.version),
        kind=m.kind,
        description=m.description,
        source=SideInfo.model_validate(m.source.model_dump()),
        target=SideInfo.model_validate(m.target.model_dump()),
        input_encoding=m.source.encoding,
        input_cardinality=m.source.size,
        output_cardinality=m.output_cardinality,
        start_token=m.start_id,
        end_token=m.end_id,
        max_steps=m.max_steps,
        decoder_output=m.decoder_output,
        vocabulary_size=len(shared) if shared else None,
        vocabulary=shared,
        state_shapes=[list(s) for s in spec.state_shapes],
        memory_shape=list(spec.memory_shape) if spec.memory_shape is not None else None,
        metrics=m.metrics,
        model_version_status=statuses,
    )


@router.get("", response_model=ModelList, responses=errors(503))
async def list_models(registry: RegistryDep) -> ModelList:
    summaries = []
    for name in registry.names():
        default = registry.get(name).spec
        summaries.append(
            ModelSummary(
                name=name,
                kind=default.manifest.kind,
                versions=[str(v) for v in registry.versions(name)],
                default_version=str(default.version),
            )
        )
    return ModelList(models=summaries)


@router.get("/{name:segment}", response_model=ModelDetail, responses=errors(404, 503))
async def model_detail(name: str, registry: RegistryDep) -> ModelDetail:
    spec = registry.get(name).spec
    return ModelDetail(
        **_version_info(spec, version_statuses(registry, name)).model_dump(),
        versions=[str(v) for v in registry.versions(name)],
        default_version=str(spec.version),
        failed_versions=[FailedVersion(version=v, error=e) for v, e in registry.refused(name)],
    )


@router.get(
    "/{name:segment}/versions/{version:segment}",
    response_model=ModelVersionInfo,
    responses=errors(404, 503),
)
async def version_detail(name: str, version: str, registry: RegistryDep) -> ModelVersionInfo:
    spec = registry.get(name, version).spec
    return _version_info(spec, [available(spec.version)])
