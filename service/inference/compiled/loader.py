"""A version directory's files -> a checked, compiled model, warmed up as configured
(compiled/warmup.py); a whole model store -> a registry of them."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from service.inference.compiled import transformer_step, warmup
from service.inference.compiled.keras_model import KerasCompute
from service.inference.compiled.model_code import model_code
from service.inference.model.formats import ModelFile, ModelFileError
from service.inference.model.formats.graph import Graph
from service.inference.model.formats.load import load_graph
from service.inference.model.interface import LoadedModel, ModelSpec
from service.inference.model.layout import infer_layout
from service.inference.model.manifest import Manifest, ManifestError
from service.inference.model.registry import Registry
from service.inference.model.store import check_store

log = logging.getLogger("service")


def build_model(
    name: str,
    version: int,
    manifest: Manifest,
    encoder: Graph | None,
    decoder: Graph,
    warm_up: bool = True,
    kv_cache: bool = True,
) -> LoadedModel:
    """Roles from the graphs' shapes (or the manifest), then compiled graphs: as the
    configured SERVICE_WARMUP says, or (`warm_up=False`) each when first used.
    `kv_cache=False`: a Transformer decoder in prefix mode even where a cache would do
    (for comparisons). Raises ManifestError saying what does not fit."""
    layout = infer_layout(
        manifest,
        decoder.inputs,
        decoder.outputs,
        encoder.outputs if encoder else (),
        encoder.inputs if encoder else (),
    )
    spec = ModelSpec(
        name, version, manifest, layout.state_shapes, layout.memory_shape, layout.window
    )
    if layout.decoder_kind == "transformer":
        assert encoder is not None and layout.window is not None
        length = manifest.source.length or layout.memory_shape[0] or 1  # type: ignore[index]
        failed = transformer_step.probe(encoder, decoder, layout, length)
        if failed is not None:
            raise ManifestError(
                f"the decoder cannot read a window of {layout.window} target positions "
                f"(max_steps, or its input's fixed length): {failed}. Lower max_steps to "
                "what its position table allows"
            )
    compute = KerasCompute(spec, layout, encoder, decoder, kv_cache)
    if layout.decoder_kind == "transformer":
        used, why_not = compute.kv_cache()
        if used:
            log.info("%s: Transformer decoder with a key/value cache", name)
        else:
            log.info("%s: Transformer decoder re-run on the prefix (no cache: %s)", name, why_not)
    if warm_up:
        warmup.prepare(compute)
    return LoadedModel(spec, compute)


def load_model(
    directory: Path,
    name: str,
    version: int,
    manifest: Manifest,
    files: list[ModelFile],
    warm_up: bool = True,
) -> LoadedModel:
    """Load one version directory's files and check them against the manifest
    (`warm_up` as for build_model)."""
    started = time.perf_counter()
    try:
        with model_code(directory, manifest.code):
            graphs = {f.stem: load_graph(f) for f in files}
    except ModelFileError as exc:
        raise ManifestError(str(exc)) from None
    except ManifestError as exc:
        raise ManifestError(f"{directory}: {exc}") from None
    decoder = graphs.get("decoder") or graphs["step"]
    try:
        model = build_model(name, version, manifest, graphs.get("encoder"), decoder, warm_up)
    except ManifestError as exc:
        raise ManifestError(f"{directory}: {exc}") from None
    return replace(model, load_seconds=time.perf_counter() - started)


def load_store(root: Path, default_model: str | None = None, warm_up: bool = True) -> Registry:
    """Every model of the store at `root`; `warm_up=False`: each graph compiled when
    first called (tests that call a few graphs of many models)."""
    checked = check_store(root)

    models: dict[str, dict[int, LoadedModel]] = {}
    for name, version, directory, manifest, files in checked:
        models.setdefault(name, {})[version] = load_model(
            directory, name, version, manifest, files, warm_up
        )
        log.info("loaded %s version %d (%s) from %s", name, version, manifest.kind, directory)
    try:
        return Registry(models, default_model)
    except ValueError as exc:
        raise ManifestError(f"{root}: {exc}") from None
