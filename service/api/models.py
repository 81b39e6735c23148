from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import RegistryDep
from service.api.responses import errors
from service.inference.base import ModelSpec
from service.schemas import ModelDetail, ModelList, ModelSummary, ModelVersionInfo

router = APIRouter(prefix="/v1/models", tags=["models"])


def _version_info(spec: ModelSpec) -> ModelVersionInfo:
    m = spec.manifest
    return ModelVersionInfo(
        name=spec.name,
        version=str(spec.version),
        kind=m.kind,
        description=m.description,
        input_encoding=m.input.encoding,
        input_cardinality=m.input.cardinality,
        output_cardinality=m.output_cardinality,
        start_token=m.start_token,
        end_token=m.end_token,
        max_steps=m.max_steps,
        vocabulary_size=len(m.vocabulary) if m.vocabulary else None,
        vocabulary=m.vocabulary,
        state_shapes=[list(s) for s in spec.state_shapes],
        metrics=m.metrics,
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


@router.get("/{name}", response_model=ModelDetail, responses=errors(404, 503))
async def model_detail(name: str, registry: RegistryDep) -> ModelDetail:
    spec = registry.get(name).spec
    return ModelDetail(
        **_version_info(spec).model_dump(),
        versions=[str(v) for v in registry.versions(name)],
        default_version=str(spec.version),
    )


@router.get(
    "/{name}/versions/{version}", response_model=ModelVersionInfo, responses=errors(404, 503)
)
async def version_detail(name: str, version: str, registry: RegistryDep) -> ModelVersionInfo:
    return _version_info(registry.get(name, version).spec)
