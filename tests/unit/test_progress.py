"""service.progress: bars on a terminal's stderr, nothing elsewhere, stdout left alone."""

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from rich.console import Console

from service.progress import Stages, _same_terminal, bars, live, task

pytestmark = pytest.mark.unit

RICH_ENV = ("TTY_COMPATIBLE", "TTY_INTERACTIVE", "FORCE_COLOR", "NO_COLOR", "TERM")


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich reads these: a CI runner's FORCE_COLOR or TERM=dumb must not decide a test."""
    for name in RICH_ENV:
        monkeypatch.delenv(name, raising=False)


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, force_interactive=True, width=100), out


def frames(text: str) -> list[str]:
    """The bar lines as drawn, escape sequences removed."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return [line for line in re.split(r"[\r\n]", plain) if line.strip()]


def test_a_bar_advances_to_n_of_n_on_a_terminal() -> None:
    console, out = terminal()
    # no drawing thread: one frame per item, so every step is in the output
    with bars(console, auto_refresh=False) as progress:
        assert live(progress)
        for _ in progress.track(range(4), description="rounds"):
            pass
    counts = [m.group(1) for line in frames(out.getvalue()) if (m := re.search(r"(\d/4)", line))]
    assert counts[-1] == "4/4"
    assert {"1/4", "2/4", "3/4"} <= set(counts)
    assert all(line.lstrip().startswith("rounds") for line in frames(out.getvalue()))


def test_a_drawing_thread_ends_on_the_last_count() -> None:
    console, out = terminal()
    with bars(console) as progress:
        epochs = progress.add_task("epochs", total=3)
        for _ in range(3):
            progress.advance(epochs)
    assert "3/3" in frames(out.getvalue())[-1]


def test_nothing_is_written_when_the_console_is_not_a_terminal() -> None:
    out = io.StringIO()
    with bars(Console(file=out, width=100)) as progress:
        assert not live(progress)
        stages = Stages(progress, "import", 2)
        stages.start("loading")
        for _ in progress.track(range(3), description="rounds"):
            pass
        stages.done()
    assert out.getvalue() == ""


def test_rich_environment_variables_force_bars_on_and_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    assert live(bars(Console(file=io.StringIO())))
    monkeypatch.setenv("TTY_INTERACTIVE", "0")
    assert not live(bars(Console(file=io.StringIO(), force_terminal=True)))


def test_a_dumb_terminal_gets_no_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert not live(bars(Console(file=io.StringIO(), force_terminal=True)))


def test_stages_name_the_running_stage_and_count_the_finished_ones() -> None:
    with bars(Console(file=io.StringIO())) as progress:
        stages = Stages(progress, "import", 3)
        [bar] = progress.tasks
        stages.start("loading")
        assert (bar.completed, bar.description) == (0, "import: loading")
        stages.start("saving")
        assert (bar.completed, bar.description) == (1, "import: saving")
        stages.done()
        assert (bar.completed, bar.description) == (3, "import: done")


def test_a_task_is_removed_when_its_block_ends_even_on_an_error() -> None:
    with bars(Console(file=io.StringIO())) as progress:
        with task(progress, "evaluating", 10) as evaluating:
            assert [t.id for t in progress.tasks] == [evaluating]
        assert progress.tasks == []
        with pytest.raises(RuntimeError), task(progress, "evaluating", None):
            raise RuntimeError("the evaluation failed")
        assert progress.tasks == []


def test_results_printed_under_the_bars_stay_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """stdout is not the terminal the bars are on (here: pytest's capture), so rich must not
    route print() through the bars' console."""
    console, out = terminal()
    with bars(console) as progress:
        progress.add_task("epochs", total=1)
        print("epoch 1/1: exact-sequence accuracy = 99.0000%")
    assert capsys.readouterr().out == "epoch 1/1: exact-sequence accuracy = 99.0000%\n"
    assert "accuracy" not in out.getvalue()


@pytest.fixture
def pty_files() -> Iterator[tuple[io.TextIOWrapper, io.TextIOWrapper, io.TextIOWrapper]]:
    """Two handles on one terminal and one on another."""
    pairs = [os.openpty(), os.openpty()]
    files = [open(pairs[0][1], "w"), open(os.dup(pairs[0][1]), "w"), open(pairs[1][1], "w")]  # noqa: SIM115
    try:
        yield files[0], files[1], files[2]
    finally:
        for f in files:
            f.close()
        for master, _ in pairs:
            os.close(master)


def test_stdout_goes_above_the_bars_only_when_it_is_their_terminal(
    monkeypatch: pytest.MonkeyPatch,
    pty_files: tuple[io.TextIOWrapper, io.TextIOWrapper, io.TextIOWrapper],
) -> None:
    bars_tty, same_tty, other_tty = pty_files
    console = Console(file=bars_tty)
    monkeypatch.setattr(sys, "stdout", same_tty)
    assert _same_terminal(console)
    monkeypatch.setattr(sys, "stdout", other_tty)
    assert not _same_terminal(console)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert not _same_terminal(console)


def test_importing_the_bars_does_not_import_tensorflow() -> None:
    code = (
        "import sys, service.progress, service.tools.check, service.tools.importer, "
        "service.training.reverse; "
        "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
