"""What a client is told about the served models: the native API's model list and
details, and each version's status (AVAILABLE, or END with why it was refused), which
TF Serving's status answer shares."""

from __future__ import annotations

from typing import Literal

from service.inference.model.interface import Compilation, LoadedModel
from service.inference.model.registry import Registry
from service.wire.model_info import (
    FailedVersion,
    ModelDetail,
    ModelList,
    ModelSummary,
    ModelVersionInfo,
    ModelVersionStatus,
    SideInfo,
    VersionStatusCode,
    XlaBuckets,
)


def available(version: int) -> ModelVersionStatus:
    return ModelVersionStatus(
        version=str(version),
        state="AVAILABLE",
        status=VersionStatusCode(error_code="OK", error_message=""),
    )


def version_statuses(registry: Registry, name: str) -> list[ModelVersionStatus]:
    """Every served version (AVAILABLE) and every refused version directory (END, with
    why), newest first. A refusal of the model directory as a whole has no version."""
    statuses = {v: available(v) for v in registry.versions(name)}
    for version, error in registry.refused(name):
        if version is not None:
            statuses[int(version)] = ModelVersionStatus(
                version=version,
                state="END",
                status=VersionStatusCode(error_code="UNKNOWN", error_message=error),
            )
    return [statuses[v] for v in sorted(statuses, reverse=True)]


def version_info(model: LoadedModel, statuses: list[ModelVersionStatus]) -> ModelVersionInfo:
    spec = model.spec
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
        decoder_kind=m.decoder_kind,
        kv_cache=kv_cache(model)[0] if m.decoder_kind == "transformer" else None,
        vocabulary_size=len(shared) if shared else None,
        vocabulary=shared,
        state_shapes=[list(s) for s in spec.state_shapes],
        memory_shape=list(spec.memory_shape) if spec.memory_shape is not None else None,
        metrics=m.metrics,
        model_version_status=statuses,
    )


def model_list(registry: Registry) -> ModelList:
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


def _compilation(model: LoadedModel) -> tuple[Literal["xla", "graph"], XlaBuckets | None]:
    """Only compiled models say (a numpy reference model runs no graphs: "graph")."""
    describe = getattr(model.compute, "compilation", None)
    found: Compilation | None = describe() if describe is not None else None
    if found is None:
        return "graph", None
    buckets = XlaBuckets(batch_sizes=found.batch_sizes, ready=found.ready, pending=found.pending)
    return "xla", buckets


def kv_cache(model: LoadedModel) -> tuple[bool, str]:
    """A Transformer decoder's key/value cache: used, or why not."""
    describe = getattr(model.compute, "kv_cache", None)
    if describe is None:
        return False, "a numpy reference model"
    used, why_not = describe()
    return bool(used), str(why_not)


def model_detail(registry: Registry, name: str) -> ModelDetail:
    model = registry.get(name)
    spec = model.spec
    compiler, buckets = _compilation(model)
    return ModelDetail(
        **version_info(model, version_statuses(registry, name)).model_dump(),
        versions=[str(v) for v in registry.versions(name)],
        default_version=str(spec.version),
        failed_versions=[FailedVersion(version=v, error=e) for v, e in registry.refused(name)],
        compiler=compiler,
        buckets=buckets,
    )


def version_detail(registry: Registry, name: str, version: str) -> ModelVersionInfo:
    model = registry.get(name, version)
    return version_info(model, [available(model.spec.version)])
