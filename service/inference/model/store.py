"""Scan `model_store/<name>/<version>/` and check every version without TensorFlow
(layout, manifests, files); compiled/loader.py loads them."""

from __future__ import annotations

import re
from pathlib import Path

from service.inference.model.formats import ModelFile, ModelFileError, find_model_file
from service.inference.model.manifest import STEMS_BY_KIND, Manifest, ManifestError
from service.inference.model.registry import version_number

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def scan_model(model_dir: Path) -> dict[int, Path]:
    """One model directory's version directories by number (none: empty); problems
    raise ManifestError. Names starting with '.' are skipped: copy a new version to
    a dot-name, then rename it."""
    if not NAME.match(model_dir.name):
        raise ManifestError(
            f"{model_dir}: model names may contain letters, digits, '_', '.', '-' only"
        )
    try:
        versions = [p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError as exc:
        raise ManifestError(f"{model_dir}: cannot list: {exc.strerror or exc}") from None
    numbers: dict[int, Path] = {}
    for version_dir in sorted(versions):
        number = version_number(version_dir.name)
        if number is None:
            raise ManifestError(f"{version_dir}: version directories must be integers")
        if number in numbers:
            raise ManifestError(
                f"{version_dir}: the same version as {numbers[number]} (one directory per version)"
            )
        numbers[number] = version_dir
    return dict(sorted(numbers.items()))


def model_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ManifestError(f"{root}: model store directory does not exist")
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise ManifestError(f"{root}: cannot list: {exc.strerror or exc}") from None


def scan(root: Path) -> list[tuple[str, int, Path]]:
    """(name, version, directory) for every version directory; problems raise ManifestError."""
    found: list[tuple[str, int, Path]] = []
    for model_dir in model_dirs(root):
        versions = scan_model(model_dir)
        if not versions:
            raise ManifestError(
                f"{model_dir}: no version directories (expected e.g. {model_dir}/1)"
            )
        found.extend((model_dir.name, number, path) for number, path in versions.items())
    if not found:
        raise ManifestError(f"{root}: no models (expected {root}/<name>/<version>/model.json)")
    return found


Signature = tuple[tuple[str, int, int], ...]


def signature(directory: Path) -> Signature:
    """What changes when any file under `directory` is written, added or removed."""
    entries = []
    for path in sorted(directory.rglob("*")):
        try:
            stat = path.stat()
        except OSError:  # removed meanwhile
            continue
        entries.append((str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def check_version(directory: Path) -> tuple[Manifest, list[ModelFile]]:
    """One version directory, without TensorFlow: its manifest and one file per model."""
    manifest = Manifest.load(directory)
    try:
        files = [find_model_file(directory, stem) for stem in STEMS_BY_KIND[manifest.kind]]
    except ModelFileError as exc:
        raise ManifestError(str(exc)) from None
    formats = {f.format for f in files}
    if len(formats) > 1:
        listed = ", ".join(f"{f.stem}: {f.format}" for f in files)
        raise ManifestError(f"{directory}: one file format per version directory ({listed})")
    return manifest, files


Checked = tuple[str, int, Path, Manifest, list[ModelFile]]


def check_store(root: Path) -> list[Checked]:
    """Everything that can be checked without TensorFlow: layout, manifests, files."""
    return [(n, v, d, *check_version(d)) for n, v, d in scan(root)]
