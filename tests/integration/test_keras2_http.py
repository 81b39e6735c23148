"""Keras 2 users' files served as they saved them: the seed tutorial's `define_models`
and a GRU + attention model, written by `tf_keras` as `.h5` and as SavedModel
directories; `/predict` equals Keras 2's own decode loop on the same models."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.floats import assert_close
from tests.integration.conftest import serving

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


@pytest.fixture(scope="module")
def url(keras2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store = tmp_path_factory.mktemp("keras2_store")
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
    with serving(store) as url:
        yield url


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
    r = httpx.post(
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
    a = httpx.post(f"{url}/v1/sessions", json=sources).json()["session_id"]
    b = httpx.post(f"{url}/v1/sessions", json=sources).json()["session_id"]
    whole = httpx.post(
        f"{url}/v1/sessions/{a}/step", json={"inputs": [1, 9, 4], "return_probabilities": True}
    ).json()
    parts = [
        httpx.post(
            f"{url}/v1/sessions/{b}/step", json={"inputs": [t], "return_probabilities": True}
        ).json()
        for t in (1, 9, 4)
    ]
    assert [o for p in parts for o in p["outputs"]] == whole["outputs"]
    assert_close([q for p in parts for q in p["probabilities"]], whole["probabilities"])
