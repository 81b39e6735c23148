"""The training commands rebuild servable models (memory fully, reverse on a small budget)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from service.inference.decoding import run_steps
from service.inference.store import load_store
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration


def train(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "service", "train", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_train_memory_reaches_the_bar(tmp_path: Path) -> None:
    out = tmp_path / "store" / "memory" / "1"
    log = train("memory", "--out", str(out), "--seed", "1")
    assert "both sequences exact" in log
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["metrics"]["sequences_exact"] == 2
    assert manifest["training"]["epochs_needed"] > 0
    model = load_store(tmp_path / "store").get("memory")
    run = run_steps(model.compute, model.spec.zero_states(2), [[3, 0, 1, 2], [4, 0, 1, 2]], False)
    assert run.outputs == [[0, 1, 2, 3], [0, 1, 2, 4]]


def test_train_reverse_small_run_writes_a_servable_model(tmp_path: Path) -> None:
    out = tmp_path / "store" / "reverse" / "1"
    log = train(
        "reverse",
        "--out",
        str(out),
        "--seed",
        "5",
        "--examples",
        "2000",
        "--epochs",
        "1",
        "--eval-size",
        "200",
    )
    assert "epoch 1/1: exact-sequence accuracy on 200 fresh sources" in log
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["metrics"]["eval_sources"] == 200
    assert 0.0 <= manifest["metrics"]["exact_sequence_accuracy"] <= 1.0
    assert manifest["training"]["seed"] == 5
    model = load_store(tmp_path / "store").get("reverse")
    assert model.spec.state_shapes == ((128,), (128,))
