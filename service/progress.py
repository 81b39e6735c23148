"""Progress bars for the long commands (train, import, bench), drawn the same way by each.

Bars go to stderr; stdout carries only results, which scripts and tests parse. They are drawn
only when stderr is an interactive terminal as rich decides it: a TTY whose TERM is not
`dumb`, or forced with rich's own variables (`TTY_COMPATIBLE=1 TTY_INTERACTIVE=1` on,
`TTY_INTERACTIVE=0` off; `NO_COLOR` keeps them plain). Anywhere else (CI logs, files, pipes)
they print nothing at all: every command already writes a plain line per epoch, stage or
round to stdout, which is what a log needs, and a bar's last frame would only repeat it in
box-drawing characters.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def bars(console: Console | None = None, auto_refresh: bool = True) -> Progress:
    """A rich `Progress` on stderr (or `console`); enter it around the command's work.

    `auto_refresh=False` for benchmarks that time their own process: no drawing thread then
    competes with the measurement, and bars redraw only when `Stages` or `track` move them.
    """
    console = console or Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        auto_refresh=auto_refresh,
        disable=not console.is_interactive,
        # results printed while bars are drawn must go above them, not through them; rich
        # does that by sending print() through the console, i.e. to stderr, so only when
        # stdout is that same terminal: a stdout sent to a file or a pipe stays untouched
        redirect_stdout=_same_terminal(console),
        refresh_per_second=5,  # training shares 2 cores: redraws cost it CPU
    )


def live(progress: Progress) -> bool:
    """Whether the bars are drawn (then they replace other progress output, e.g. Keras's)."""
    return not progress.disable


@contextmanager
def task(progress: Progress, description: str, total: float | None) -> Iterator[TaskID]:
    """A bar shown while one piece of work runs (an evaluation), removed when it ends."""
    task_id = progress.add_task(description, total=total)
    try:
        yield task_id
    finally:
        progress.remove_task(task_id)


class Stages:
    """One bar over a command's named stages: `start(name)` completes the stage before."""

    def __init__(self, progress: Progress, title: str, total: int) -> None:
        self.progress, self.title, self.total = progress, title, total
        self.task = progress.add_task(title, total=total)
        self._started = False

    def start(self, name: str) -> None:
        advance = 1 if self._started else 0
        description = f"{self.title}: {name}"
        self.progress.update(self.task, advance=advance, description=description, refresh=True)
        self._started = True

    def done(self) -> None:
        description = f"{self.title}: done"
        self.progress.update(self.task, completed=self.total, description=description, refresh=True)


def _same_terminal(console: Console) -> bool:
    try:
        out, err = sys.stdout.fileno(), console.file.fileno()
        return os.isatty(out) and os.path.samestat(os.fstat(out), os.fstat(err))
    except (AttributeError, OSError, ValueError):  # no real file behind one of them
        return False
