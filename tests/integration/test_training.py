"""The training commands rebuild servable models that reach their bars (memory fully,
reverse after one epoch), and show progress bars on a terminal only."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.inference.compiled.loader import load_store
from service.inference.serving.decoding import greedy_decode, run_steps
from tests.harness import ROOT

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


def test_epoch_bars_advance_once_per_epoch_across_fit_calls() -> None:
    """The shipped problems call `fit` an epoch (or a check's worth) at a time; the bar counts
    every epoch of the run, and the batches of the current one."""
    import keras
    from rich.console import Console

    from service.progress import bars
    from service.training.progress import EpochBars

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = np.random.default_rng(0).normal(size=(20, 3)), np.zeros((20, 1))
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=120)
    with bars(console) as progress:
        epoch_bars = EpochBars(progress, 3)
        model.fit(x, y, batch_size=5, epochs=2, verbose=0, callbacks=[epoch_bars])
        epochs, batches = progress.tasks
        assert (epochs.completed, epochs.total) == (2, 3)
        model.fit(x, y, batch_size=5, epochs=1, verbose=0, callbacks=[epoch_bars])
        assert (epochs.completed, batches.completed, batches.total) == (3, 4, 4)
    assert re.fullmatch(r"epochs  loss \d+\.\d{4}  mae \d+\.\d{4}", epochs.description)
    last_frame = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue()).splitlines()[-2:]
    assert "3/3" in last_frame[0] and "4/4" in last_frame[1], last_frame


def test_train_reverse_draws_bars_on_a_terminal_and_changes_nothing_else(tmp_path: Path) -> None:
    """A tiny run with stderr forced to be a terminal (rich's own variables) and the same run
    without: bars on stderr only in the first, stdout's lines and model.json's figures the
    same in both (Keras's own line per epoch is what the bar replaces)."""
    args = ["--seed", "3", "--epochs", "1", "--examples", "200", "--eval-size", "50"]
    runs = {}
    for name, tty in (("terminal", "1"), ("log", "0")):
        env = {**os.environ, "TTY_COMPATIBLE": tty, "TTY_INTERACTIVE": tty, "COLUMNS": "120"}
        out = tmp_path / name
        runs[name] = subprocess.run(
            [sys.executable, "-m", "service", "train", "reverse", "--out", str(out), *args],
            cwd=ROOT,
            env={k: v for k, v in env.items() if k not in ("FORCE_COLOR", "NO_COLOR")},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert runs[name].returncode == 0, runs[name].stderr[-3000:]
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", runs["terminal"].stderr)
    assert re.search(r"epochs  accuracy \d\.\d{4}  loss \d+\.\d{4} .*1/1", drawn), drawn[-2000:]
    assert re.search(r"batches .* 7/7", drawn)  # 200 examples in batches of 32
    assert "━" not in runs["log"].stderr and "\x1b[" not in runs["log"].stderr

    def stdout(name: str) -> str:  # the output directory is the one thing that differs
        return runs[name].stdout.replace(str(tmp_path / name), "OUT")

    keras_line = re.compile(r"^7/7 - .*loss: .*\n", re.MULTILINE)
    assert keras_line.search(stdout("log"))
    assert keras_line.sub("", stdout("log")) == stdout("terminal")
    assert "epoch 1/1: exact-sequence accuracy on 50 fresh sources" in runs["terminal"].stdout
    written = {name: json.loads((tmp_path / name / "model.json").read_text()) for name in runs}
    assert written["terminal"]["metrics"] == written["log"]["metrics"]
