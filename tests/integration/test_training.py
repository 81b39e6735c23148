"""The training commands rebuild servable models that reach their bars (memory fully,
reverse after one epoch)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.inference.decoding import greedy_decode, run_steps
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


def test_train_reverse_one_epoch_reaches_the_bar(tmp_path: Path) -> None:
    """REFERENCE.md: one epoch of 100,000 examples is enough. Measured here: 99.18%
    (seed 1) and 98.9% (seed 5) exact sequences after one epoch, in ~30 s."""
    out = tmp_path / "store" / "reverse" / "1"
    args = ["--seed", "5", "--examples", "100000", "--epochs", "1", "--eval-size", "2000"]
    log = train("reverse", "--out", str(out), *args)
    assert "epoch 1/1: exact-sequence accuracy on 2000 fresh sources" in log
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["metrics"]["eval_sources"] == 2000
    assert manifest["metrics"]["exact_sequence_accuracy"] >= 0.95
    assert manifest["training"]["seed"] == 5
    model = load_store(tmp_path / "store").get("reverse")
    assert model.spec.state_shapes == ((128,), (128,))
    # re-measured on other fresh sources through the serving code, not taken on trust
    sources = np.random.default_rng(99).integers(1, 51, size=(2000, 6))
    outputs, _ = greedy_decode(model.compute, sources.tolist(), 3, False)
    exact = np.all(np.asarray(outputs) == sources[:, :3][:, ::-1], axis=1)
    assert exact.mean() >= 0.95, exact.mean()
