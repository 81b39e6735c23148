"""A model's own Python (manifest `code`): files of its version directory that register
custom Keras layers, imported before its model files load, and only where the operator
trusts model code (SERVICE_TRUST_MODEL_CODE=true): importing a file runs it."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import keras

from service.inference.model.manifest import ManifestError

_trusted = False


def configure(trusted: bool) -> None:
    """SERVICE_TRUST_MODEL_CODE, for every model this process loads."""
    global _trusted
    _trusted = trusted


@contextmanager
def model_code(directory: Path, files: list[str]) -> Iterator[None]:
    """Import `files` for the duration of the load. The classes they register are
    registered only while the model loads, so two versions may register the same names."""
    if not files:
        yield
        return
    if not _trusted:
        raise ManifestError(
            f"its manifest lists code files ({', '.join(files)}), which run when imported; "
            "the service imports them only with SERVICE_TRUST_MODEL_CODE=true"
        )
    registered = keras.saving.get_custom_objects()
    before = dict(registered)
    try:
        for name in files:
            _import(directory / name)
        yield
    finally:
        registered.clear()
        registered.update(before)


def import_file(path: Path) -> None:
    """Import one code file for good (`python -m service import`: the operator names it)."""
    _import(path)


def _import(path: Path) -> None:
    if not path.is_file():
        raise ManifestError(f"code file {path.name} is missing")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    module_name = f"_model_code_{digest}_{path.stem.replace('.', '_').replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ManifestError(f"code file {path.name} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ManifestError(f"code file {path.name} failed: {type(exc).__name__}: {exc}") from None
