"""Slow set-up started in the background as soon as pytest knows which tests will run.

Most of the suite keeps one core busy (a test and the server it talks to take turns), so
the other can load the servers the next tests need, and run the long subprocesses (model
builds, training) that a test only reads the result of.

A conftest or test module names what can be started early: server `plan`s (settings, a
store) and jobs (`add_job`: subprocesses, tests/harness/jobs.py), each under the name of
the fixture that uses it. Once the selected tests are known (`launch`), the jobs start at
once (niced, their subprocesses take the cores the tests leave), and a thread starts the
planned servers in the order the tests first use them, one at a time, at most
`lookahead` of them started and not yet asked for. A fixture asks with `server(name)`
(started then if the thread has not reached it) or `job(name)`, and gives a server back
with `release(name)` when its scope ends.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.harness.server import STORE, Server, start_server, wait_ready


class Stoppable(Protocol):
    def stop(self) -> None: ...


@dataclass
class Plan:
    """A server that may start before the test that uses it: its settings (or a function
    giving them, called when it starts) and its store, the shipped one or a temporary
    directory that `store` fills (given the directory, it returns the store)."""

    env: dict[str, str] | Callable[[], dict[str, str]] = field(default_factory=dict)
    store: Callable[[Path], Path] | None = None
    timeout: float = 120
    fixture: str | None = None  # the fixture whose use calls for it, if not its name
    after: str | None = None  # a job its store needs: the thread starts it once that ends
    product_defaults: bool = False  # SERVICE_WARMUP and SERVICE_XLA: the service's defaults


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
    server = start_server(None, env, store, product_defaults=plan.product_defaults)
    return Prepared(server, env, store, directory)


class Slot:
    """A planned server being started (its store prepared, then its process)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.prepared: Prepared | None = None
        self.error: BaseException | None = None

    def get(self) -> Prepared:
        self.started.wait()
        if self.prepared is None:
            raise RuntimeError("the server could not be started") from self.error
        return self.prepared


class Early:
    def __init__(self, lookahead: int = 3) -> None:
        self.lookahead = lookahead
        self.plans: dict[str, Plan] = {}
        self.starters: dict[str, Callable[[set[str]], Stoppable]] = {}
        self.slots: dict[str, Slot] = {}  # started, not released
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
        order: list[str] = []  # plans and jobs, in the order the tests first use them
        for item in items:
            self.selected.add(getattr(item, "originalname", item.name))
            for fixture in getattr(item, "fixturenames", ()):
                names = [n for n, p in self.plans.items() if (p.fixture or n) == fixture]
                if fixture in self.starters:
                    names.append(fixture)
                order += [name for name in names if name not in order]
        for name in order:
            if name in self.starters:
                self.job(name)
        queue = [name for name in order if name in self.plans]
        if queue:
            self.thread = threading.Thread(target=self._prefetch, args=(queue,), daemon=True)
            self.thread.start()

    def _waits(self, name: str) -> bool:
        """`name` needs a job that is still running."""
        after = self.plans[name].after
        return after is not None and not self.job(after).finished()

    def _prefetch(self, queue: list[str]) -> None:
        while queue:
            with self.lock:
                self.lock.wait_for(lambda: self.closing or self._unclaimed() < self.lookahead)
                if self.closing:
                    return
                name = next((n for n in queue if not self._waits(n)), None)
                if name is None:  # each one left waits for a job: look again soon
                    self.lock.wait(0.5)
                    continue
                queue.remove(name)
                slot, mine = self._slot(name, again=False)
            if not mine:
                continue
            # one at a time: each load keeps about one core busy; a failure (kept in the
            # slot) is the business of the fixture that asks for it
            with contextlib.suppress(Exception):
                self._fill(name, slot)
                wait_ready(slot.get().server, self.plans[name].timeout, cancel=self._closing)

    def _closing(self) -> bool:
        return self.closing

    def _unclaimed(self) -> int:
        return sum(name not in self.claimed for name in self.slots)

    def _slot(self, name: str, again: bool) -> tuple[Slot | None, bool]:
        """Under the lock: the slot of `name` and whether the caller is to start it (a new
        slot); `again`: a new one even if `name` ran and was released before."""
        if name in self.slots:
            return self.slots[name], False
        if name in self.ever and not again:
            return None, False
        self.slots[name] = Slot()
        self.ever.add(name)
        return self.slots[name], True

    def _fill(self, name: str, slot: Slot | None) -> None:
        """Outside the lock: a store may take time (one may wait for a job)."""
        assert slot is not None
        try:
            slot.prepared = start(self.plans[name])
        except BaseException as error:
            slot.error = error
            raise
        finally:
            slot.started.set()

    def prepared(self, name: str) -> Prepared:
        """The planned server `name`, ready, and the store it serves."""
        return self.prepared_all([name])[0]

    def prepared_all(self, names: list[str]) -> list[Prepared]:
        """Several planned servers, those not started yet started together, all ready."""
        with self.lock:
            self.claimed.update(names)
            slots = [self._slot(name, again=True) for name in names]
            self.lock.notify_all()
        for name, (slot, mine) in zip(names, slots, strict=True):
            if mine:
                self._fill(name, slot)
        prepared = []
        for name, (slot, _) in zip(names, slots, strict=True):
            assert slot is not None
            prepared.append(slot.get())
            wait_ready(prepared[-1].server, self.plans[name].timeout)
        return prepared

    def server(self, name: str) -> Server:
        return self.prepared(name).server

    def release(self, name: str) -> None:
        """Stop the server `name` (its scope is over); asked for again, it starts anew."""
        with self.lock:
            slot = self.slots.pop(name, None)
            self.claimed.discard(name)
            self.lock.notify_all()
        if slot is not None:
            slot.started.wait()
            if slot.prepared is not None:
                slot.prepared.stop()

    def job(self, name: str) -> Any:
        """The job `name`, started now if it was not launched with the others."""
        with self.lock:
            if name not in self.jobs:
                self.jobs[name] = self.starters[name](self.selected)
            return self.jobs[name]

    def stop(self) -> None:
        with self.lock:
            self.closing = True
            self.lock.notify_all()
        if self.thread is not None:
            self.thread.join()
        prepared = [s.prepared for s in self.slots.values() if s.prepared is not None]
        for p in prepared:
            p.server.terminate()  # their clean shutdowns overlap
        for p in prepared:
            p.stop()
        for job in self.jobs.values():
            job.stop()
        self.slots.clear()
        self.jobs.clear()
