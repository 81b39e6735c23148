"""Keras 2 users' files served as they saved them: the seed tutorial's `define_models`
and a GRU + attention model, written by `tf_keras` as `.h5` and as SavedModel
directories; `/predict` equals Keras 2's own decode loop on the same models."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.floats import assert_close
from tests.harness import Server
from tests.harness.early import Plan
from tests.harness.http import HTTP
from tests.integration.conftest import EARLY, built_keras2_files

pytestmark = pytest.mark.integration

MANIFESTS: dict[str, dict[str, Any]] = {
    "tutorial": {
        "kind": "seq2seq",
        "input": {"encoding": "one_hot", "cardinality": 51},
        "output_cardinality": 51,
        "start_token": 0,
        "max_steps": 3,
    },
    "attention": {
        "kind": "seq2seq",
        "source": {"encoding": "index", "cardinality": 30},
        "target": {"encoding": "index", "cardinality": 40},
        "start_token": 1,
        "end_token": 2,
        "max_steps": 5,
    },
}


def keras2_store(store: Path) -> Path:
    """Each model in each format, as its own model, once the Keras 2 files are written."""
    keras2_dir = built_keras2_files()
    for model, manifest in MANIFESTS.items():
        for fmt in ("h5", "saved_model"):
            directory = store / f"{model}_{fmt}" / "1"
            directory.mkdir(parents=True)
            for part in ("encoder", "decoder"):
                if fmt == "h5":
                    shutil.copy(keras2_dir / f"{model}_{part}.h5", directory / f"{part}.h5")
                else:
                    shutil.copytree(keras2_dir / f"{model}_{part}", directory / part)
            (directory / "model.json").write_text(json.dumps(manifest))
    return store


# started as soon as the Keras 2 files are (slow start-ups allowed: many models)
EARLY.plan("keras2_server", Plan(store=keras2_store, timeout=300, after="keras2_dir"))


@pytest.fixture(scope="module")
def keras2_server() -> Iterator[Server]:
    try:
        yield EARLY.server("keras2_server")
    finally:
        EARLY.release("keras2_server")


@pytest.fixture(scope="module")
def url(keras2_dir: Path, keras2_server: Server) -> str:
    return keras2_server.url


def keras2_decodes(keras2_dir: Path, model: str) -> list[tuple[list[int], Any, Any]]:
    with np.load(keras2_dir / "predictions.npz") as data:
        found = []
        i = 0
        while f"{model}.decode.{i}.source" in data:
            source = data[f"{model}.decode.{i}.source"]
            ids = np.argmax(source, axis=-1) if source.ndim == 2 else source.astype(int)
            found.append(
                (
                    ids.tolist(),
                    data[f"{model}.decode.{i}.tokens"],
                    data[f"{model}.decode.{i}.probs"],
                )
            )
            i += 1
    return found


@pytest.mark.parametrize("model", ["tutorial", "attention"])
@pytest.mark.parametrize("fmt", ["h5", "saved_model"])
def test_predict_equals_keras2_decode(url: str, keras2_dir: Path, model: str, fmt: str) -> None:
    expected = keras2_decodes(keras2_dir, model)
    assert len(expected) == 4
    r = HTTP.post(
        f"{url}/v1/models/{model}_{fmt}/predict",
        json={"inputs": [ids for ids, _, _ in expected], "return_probabilities": True},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    for i, (_, tokens, probs) in enumerate(expected):
        assert body["outputs"][i] == tokens.tolist()
        assert_close(body["probabilities"][i], probs, f"{model} {fmt} source {i}")


def test_keras2_session_steps(url: str) -> None:
    """A Keras 2 attention model in a session: one token per request equals one call."""
    name = "attention_saved_model"
    sources = {"model": name, "source": [5, 6, 7]}
    a = HTTP.post(f"{url}/v1/sessions", json=sources).json()["session_id"]
    b = HTTP.post(f"{url}/v1/sessions", json=sources).json()["session_id"]
    whole = HTTP.post(
        f"{url}/v1/sessions/{a}/step", json={"inputs": [1, 9, 4], "return_probabilities": True}
    ).json()
    parts = [
        HTTP.post(
            f"{url}/v1/sessions/{b}/step", json={"inputs": [t], "return_probabilities": True}
        ).json()
        for t in (1, 9, 4)
    ]
    assert [o for p in parts for o in p["outputs"]] == whole["outputs"]
    assert_close([q for p in parts for q in p["probabilities"]], whole["probabilities"])
