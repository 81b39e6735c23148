"""Slow set-up started in the background as soon as pytest knows which tests will run.

Most of the suite keeps one core busy (a test and the server it talks to take turns), so
the other can load the servers the next tests need, and run the long subprocesses (model
builds, training) that a test only reads the result of.

A conftest or test module names what can be started early: server `plan`s (settings, a
store) and jobs (`add_job`: subprocesses), each under the name of the fixture that uses
it. Once
the selected tests are known (`launch`), the jobs start at once, niced (they take the
cores the tests leave), and a thread starts the planned servers in the order the tests
first use them, one at a time, at most `lookahead` of them ready and not yet asked for.
A fixture asks with `server(name)` (started then if the thread has not reached it) or
`job(name)`, and gives a server back with `release(name)` when its scope ends.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.harness.server import ROOT, STORE, Server, start_server, wait_ready


class Stoppable(Protocol):
    def stop(self) -> None: ...


class Job:
    """A subprocess started now, its output in files (not pipes: a full pipe would stall
    it while nobody reads); `result()` waits for it. `nice`: a lower priority;
    `cleanup`: a directory to remove when it is stopped."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        out: Path | None = None,
        nice: int = 0,
        cleanup: Path | None = None,
    ):
        self.out = out  # where it writes, when the caller says
        self.cleanup = cleanup  # a directory removed by stop
        self.stdout = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop
        prefix = ["nice", "-n", str(nice)] if nice and shutil.which("nice") else []
        self.process = subprocess.Popen(
            [*prefix, *argv], cwd=ROOT, env=env, stdout=self.stdout, stderr=self.stderr, text=True
        )

    def result(self, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        self.process.wait(timeout=timeout)
        self.stdout.seek(0)
        self.stderr.seek(0)
        return subprocess.CompletedProcess(
            self.process.args, self.process.returncode, self.stdout.read(), self.stderr.read()
        )

    def stop(self) -> None:
        self.process.kill()  # a no-op once it has exited
        self.process.wait()
        self.stdout.close()
        self.stderr.close()
        if self.cleanup is not None:
            shutil.rmtree(self.cleanup, ignore_errors=True)


@dataclass
class Plan:
    """A server that may start before the test that uses it: its settings (or a function
    giving them, called when it starts) and its store, the shipped one or a temporary
    directory that `store` fills (given the directory, it returns the store)."""

    env: dict[str, str] | Callable[[], dict[str, str]] = field(default_factory=dict)
    store: Callable[[Path], Path] | None = None
    timeout: float = 120


@dataclass
class Prepared:
    server: Server
    env: dict[str, str]  # its settings
    store: Path
    directory: Path | None = None  # the temporary directory the store is in

    def stop(self) -> None:
        self.server.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


def start(plan: Plan) -> Prepared:
    directory = Path(tempfile.mkdtemp(prefix="early-")) if plan.store else None
    store = plan.store(directory) if plan.store and directory else STORE
    env = plan.env() if callable(plan.env) else plan.env
    return Prepared(start_server(None, env, store), env, store, directory)


class Early:
    def __init__(self, lookahead: int = 2) -> None:
        self.lookahead = lookahead
        self.plans: dict[str, Plan] = {}
        self.starters: dict[str, Callable[[set[str]], Stoppable]] = {}
        self.started: dict[str, Prepared] = {}
        self.ever: set[str] = set()  # started once: the thread does not start it again
        self.claimed: set[str] = set()
        self.jobs: dict[str, Stoppable] = {}
        self.selected: set[str] = set()  # the selected tests' function names
        self.lock = threading.Condition()
        self.closing = False
        self.thread: threading.Thread | None = None

    def plan(self, name: str, plan: Plan) -> None:
        self.plans[name] = plan

    def add_job(self, name: str, start: Callable[[set[str]], Stoppable]) -> None:
        """`start(selected test names)` starts the job when it is launched."""
        self.starters[name] = start

    def launch(self, items: Iterable[pytest.Item]) -> None:
        """Start the jobs the selected tests use, and the thread for their servers."""
        order: list[str] = []
        for item in items:
            self.selected.add(getattr(item, "originalname", item.name))
            for name in getattr(item, "fixturenames", ()):
                if (name in self.plans or name in self.starters) and name not in order:
                    order.append(name)
        for name in order:
            if name in self.starters:
                self.job(name)
        queue = [name for name in order if name in self.plans]
        if queue:
            self.thread = threading.Thread(target=self._prefetch, args=(queue,), daemon=True)
            self.thread.start()

    def _prefetch(self, queue: list[str]) -> None:
        for name in queue:
            with self.lock:
                self.lock.wait_for(lambda: self.closing or self._unclaimed() < self.lookahead)
                if self.closing:
                    return
                if name in self.ever:
                    continue
                prepared = self._start(name)
            # one at a time: each load keeps about one core busy; a failure is the
            # business of the fixture that asks for it
            with contextlib.suppress(Exception):
                wait_ready(prepared.server, self.plans[name].timeout, cancel=self._closing)

    def _closing(self) -> bool:
        return self.closing

    def _unclaimed(self) -> int:
        return sum(name not in self.claimed for name in self.started)

    def _start(self, name: str) -> Prepared:  # under the lock
        prepared = start(self.plans[name])
        self.started[name] = prepared
        self.ever.add(name)
        return prepared

    def prepared(self, name: str) -> Prepared:
        """The planned server `name`, ready, and the store it serves."""
        with self.lock:
            self.claimed.add(name)
            prepared = self.started.get(name) or self._start(name)
            self.lock.notify_all()
        wait_ready(prepared.server, self.plans[name].timeout)
        return prepared

    def server(self, name: str) -> Server:
        return self.prepared(name).server

    def release(self, name: str) -> None:
        """Stop the server `name` (its scope is over); asked for again, it starts anew."""
        with self.lock:
            prepared = self.started.pop(name, None)
            self.claimed.discard(name)
            self.lock.notify_all()
        if prepared is not None:
            prepared.stop()

    def job(self, name: str) -> Any:
        """The job `name`, started now if it was not launched with the others."""
        if name not in self.jobs:
            self.jobs[name] = self.starters[name](self.selected)
        return self.jobs[name]

    def stop(self) -> None:
        with self.lock:
            self.closing = True
            self.lock.notify_all()
        if self.thread is not None:
            self.thread.join()
        for prepared in self.started.values():
            prepared.server.terminate()  # their clean shutdowns overlap
        for prepared in self.started.values():
            prepared.stop()
        for job in self.jobs.values():
            job.stop()
        self.started.clear()
        self.jobs.clear()
