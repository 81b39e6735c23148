"""A model's calls into its XLA programs (SERVICE_XLA): the bucket a batch is padded to,
the program's result when that bucket is compiled (else None, the bucket queued, for the
TF graph to answer), and calls that skip XLA on one thread (the graphs' warm-up)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from service.inference.compiled import buckets as pad
from service.inference.compiled import xla
from service.inference.model.interface import Compilation


class XlaCalls:
    def __init__(self, compiler: xla.Xla | None) -> None:
        self.compiler = compiler  # None: SERVICE_XLA=off
        self._local = threading.local()  # .graphs_only: this thread's calls skip XLA

    def compilation(self) -> Compilation | None:
        """The XLA buckets, or None while the TF graphs serve this model."""
        if self.compiler is None or not self.compiler.usable:
            return None
        found = self.compiler.buckets()
        sizes = pad.sizes(xla.largest_batch())
        return Compilation(sizes, found["ready"], found["pending"])

    def result(self, name: str, args: list[Any]) -> Any | None:
        """The XLA program's result if its bucket is compiled; else None (and the bucket
        queued), for the TF graph to answer."""
        compiler = self.compiler
        if compiler is None or not compiler.usable:
            return None
        key = xla.key_of(name, args)
        if not compiler.ready(key):
            compiler.want(key, args)
            return None
        try:
            return compiler.call(name, args)
        except Exception as exc:  # noqa: BLE001  a program that compiled but cannot run
            compiler.broke(key, exc)
            return None

    @contextmanager
    def graphs_only(self) -> Iterator[None]:
        """This thread's calls run the TF graphs and queue no XLA bucket (the graphs'
        warm-up runs placeholder batches through them)."""
        self._local.graphs_only = True
        try:
            yield
        finally:
            self._local.graphs_only = False

    def rows(self, n: int) -> int | None:
        """The batch size `n` rows are padded to, or None: the TF graph answers."""
        if self.compiler is None or getattr(self._local, "graphs_only", False):
            return None
        return pad.bucket(n, xla.largest_batch())

    @staticmethod
    def horizon(steps: int) -> int | None:
        return pad.bucket(max(steps, 1), pad.LONGEST_HORIZON)
