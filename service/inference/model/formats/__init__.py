"""Model files in a version directory, by format. This module does not import TensorFlow:
`find_model_file` runs in the start-up check before TensorFlow loads.

A model named `encoder` (or `decoder`, `step`) may be stored as exactly one of:
`encoder.keras` (Keras 3 native), `encoder.h5` (HDF5, Keras 3 or Keras 2 / tf_keras),
or `encoder/` (a TF SavedModel directory with `saved_model.pb`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Format = Literal["keras", "h5", "saved_model"]


class ModelFileError(Exception):
    """A model file that is missing, ambiguous or unreadable; the message says which."""


@dataclass(frozen=True)
class ModelFile:
    stem: str  # "encoder", "decoder" or "step"
    format: Format
    path: Path


def candidates(directory: Path, stem: str) -> list[ModelFile]:
    found = []
    if (directory / f"{stem}.keras").is_file():
        found.append(ModelFile(stem, "keras", directory / f"{stem}.keras"))
    if (directory / f"{stem}.h5").is_file():
        found.append(ModelFile(stem, "h5", directory / f"{stem}.h5"))
    if (directory / stem / "saved_model.pb").is_file():
        found.append(ModelFile(stem, "saved_model", directory / stem))
    return found


def find_model_file(directory: Path, stem: str) -> ModelFile:
    found = candidates(directory, stem)
    if not found:
        raise ModelFileError(
            f"{directory}: missing model file {stem}.keras, {stem}.h5 or {stem}/saved_model.pb"
        )
    if len(found) > 1:
        names = ", ".join(f.path.name + ("/" if f.format == "saved_model" else "") for f in found)
        raise ModelFileError(
            f"{directory}: {stem} is stored in {len(found)} formats ({names}); keep exactly one"
        )
    return found[0]
