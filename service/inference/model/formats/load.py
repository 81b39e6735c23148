"""One entry point for every model file format."""

from __future__ import annotations

import re

from service.inference.model.formats import ModelFile, ModelFileError
from service.inference.model.formats.graph import Graph
from service.inference.model.formats.keras_file import load_h5, load_keras
from service.inference.model.formats.saved_model import load_saved_model

MAX_REASON = 600  # Keras errors can quote a whole layer config

# Keras 2 wraps TF functions called on Keras tensors (tf.concat, tf.expand_dims, ...) in
# these layers; Keras 3 has no equivalent, but the traced SavedModel of the model runs.
_TF_OP_LAYERS = re.compile(r"TFOpLambda|SlicingOpLambda")


def load_graph(file: ModelFile) -> Graph:
    """Load `file`; any failure is a `ModelFileError` naming the file and the reason."""
    try:
        if file.format == "keras":
            return load_keras(file.path)
        if file.format == "h5":
            return load_h5(file.path)
        if file.format == "saved_model":
            return load_saved_model(file.path)
        raise ModelFileError(f"unknown model file format {file.format!r}")
    except Exception as exc:  # Keras, h5py and TF raise many types for unreadable files
        raise ModelFileError(f"{file.path}: cannot load: {_reason(exc)}") from exc


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 3] + "..."
    if _TF_OP_LAYERS.search(text):
        text += (
            " (TensorFlow functions called on Keras 2 tensors cannot be rebuilt by Keras 3;"
            " save the model as a SavedModel directory with Keras 2 instead)"
        )
    return text
