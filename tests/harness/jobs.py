"""A subprocess whose result a test reads later (a model build, a training run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from tests.harness import zygote


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
        self.lock = threading.Lock()
        self.done: subprocess.CompletedProcess[str] | None = None
        self.stdout = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop
        environment = dict(os.environ if env is None else env)
        self.process = zygote.popen(argv, environment, self.stdout, self.stderr, nice=nice)

    def finished(self) -> bool:
        return self.process.poll() is not None

    def result(self, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Once it has exited (any thread may ask, any number of times)."""
        self.process.wait(timeout=timeout)
        with self.lock:
            if self.done is None:
                self.stdout.seek(0)
                self.stderr.seek(0)
                self.done = subprocess.CompletedProcess(
                    self.process.args,
                    self.process.returncode,
                    self.stdout.read(),
                    self.stderr.read(),
                )
            return self.done

    def stop(self) -> None:
        self.process.kill()  # a no-op once it has exited
        self.process.wait()
        self.stdout.close()
        self.stderr.close()
        if self.cleanup is not None:
            shutil.rmtree(self.cleanup, ignore_errors=True)
