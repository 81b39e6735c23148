"""The training commands rebuild servable models that reach their bars (memory fully,
reverse after one epoch), and show progress bars on a terminal only."""

import io
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from service.inference.compiled.loader import load_store
from service.inference.serving.decoding import greedy_decode, run_steps
from tests.harness.jobs import Job
from tests.integration.conftest import EARLY

pytestmark = pytest.mark.integration


def training(args: list[str], out: Path, env: dict[str, str] | None = None) -> Job:
    """`python -m service train <args> --out <out>`, started now."""
    argv = [sys.executable, "-m", "service", "train", *args, "--out", str(out)]
    return Job(argv, env, out, nice=10)


def tty_env(name: str) -> dict[str, str]:
    """Rich's own variables: stderr a terminal for the "terminal" run, not for the other."""
    tty = "1" if name == "terminal" else "0"
    env = {**os.environ, "TTY_COMPATIBLE": tty, "TTY_INTERACTIVE": tty, "COLUMNS": "120"}
    return {k: v for k, v in env.items() if k not in ("FORCE_COLOR", "NO_COLOR")}


TINY = ["reverse", "--seed", "3", "--epochs", "1", "--examples", "200", "--eval-size", "50"]
# every run the tests of this module make, and which test reads it
RUNS = {
    "memory": (["memory", "--seed", "1"], "test_train_memory_reaches_the_bar"),
    "reverse": (
        ["reverse", "--seed", "5", "--examples", "100000", "--epochs", "1", "--eval-size", "2000"],
        "test_train_reverse_one_epoch_reaches_the_bar",
    ),
    "terminal": (TINY, "test_train_reverse_draws_bars_on_a_terminal_and_changes_nothing_else"),
    "log": (TINY, "test_train_reverse_draws_bars_on_a_terminal_and_changes_nothing_else"),
}


class Trainings:
    """The runs the selected tests read, started together under one temporary directory."""

    def __init__(self, selected: set[str]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="training-"))
        self.runs: dict[str, Job] = {}
        for name, (args, test) in RUNS.items():
            if test in selected:
                if name in ("terminal", "log"):
                    self.runs[name] = training(args, self.root / name, tty_env(name))
                else:
                    self.runs[name] = training(args, self.root / name / name / "1")

    def stop(self) -> None:
        for job in self.runs.values():
            job.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# started in the background as soon as the selected tests are known (each run is one
# process on about one core, niced: it takes what the tests before it leave)
EARLY.add_job("trainings", Trainings)


@pytest.fixture(scope="module")
def trainings() -> dict[str, Job]:
    runs: Trainings = EARLY.job("trainings")
    return runs.runs


def out_dir(trainings: dict[str, Job], name: str) -> Path:
    """The run's --out directory."""
    directory = trainings[name].out
    assert directory is not None
    return directory


def trained(trainings: dict[str, Job], name: str) -> tuple[str, Path]:
    """The run's stdout once it succeeded, and its --out directory."""
    result = trainings[name].result()
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, out_dir(trainings, name)


def test_train_memory_reaches_the_bar(trainings: dict[str, Job]) -> None:
    log, out = trained(trainings, "memory")
    assert "both sequences exact" in log
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["metrics"]["sequences_exact"] == 2
    assert manifest["training"]["epochs_needed"] > 0
    model = load_store(out.parent.parent, warm_up=False).get("memory")
    run = run_steps(model.compute, model.spec.zero_states(2), [[3, 0, 1, 2], [4, 0, 1, 2]], False)
    assert run.outputs == [[0, 1, 2, 3], [0, 1, 2, 4]]


def test_train_reverse_one_epoch_reaches_the_bar(trainings: dict[str, Job]) -> None:
    """REFERENCE.md: one epoch of 100,000 examples is enough. Measured here: 99.18%
    (seed 1) and 98.9% (seed 5) exact sequences after one epoch, in ~30 s."""
    log, out = trained(trainings, "reverse")
    assert "epoch 1/1: exact-sequence accuracy on 2000 fresh sources" in log
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["metrics"]["eval_sources"] == 2000
    assert manifest["metrics"]["exact_sequence_accuracy"] >= 0.95
    assert manifest["training"]["seed"] == 5
    model = load_store(out.parent.parent, warm_up=False).get("reverse")
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


def test_train_reverse_draws_bars_on_a_terminal_and_changes_nothing_else(
    trainings: dict[str, Job],
) -> None:
    """A tiny run with stderr forced to be a terminal (rich's own variables) and the same run
    without: bars on stderr only in the first, stdout's lines and model.json's figures the
    same in both (Keras's own line per epoch is what the bar replaces)."""
    runs = {name: trainings[name].result() for name in ("terminal", "log")}
    for name in runs:
        assert runs[name].returncode == 0, runs[name].stderr[-3000:]
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", runs["terminal"].stderr)
    assert re.search(r"epochs  accuracy \d\.\d{4}  loss \d+\.\d{4} .*1/1", drawn), drawn[-2000:]
    assert re.search(r"batches .* 7/7", drawn)  # 200 examples in batches of 32
    assert "━" not in runs["log"].stderr and "\x1b[" not in runs["log"].stderr

    def stdout(name: str) -> str:  # the output directory is the one thing that differs
        return runs[name].stdout.replace(str(out_dir(trainings, name)), "OUT")

    keras_line = re.compile(r"^7/7 - .*loss: .*\n", re.MULTILINE)
    assert keras_line.search(stdout("log"))
    assert keras_line.sub("", stdout("log")) == stdout("terminal")
    assert "epoch 1/1: exact-sequence accuracy on 50 fresh sources" in runs["terminal"].stdout
    written = {n: json.loads((out_dir(trainings, n) / "model.json").read_text()) for n in runs}
    assert written["terminal"]["metrics"] == written["log"]["metrics"]
