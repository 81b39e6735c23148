"""Slow set-up started in the background as soon as pytest knows which tests will run, so
that it overlaps with the tests before the first one that needs it (the contract tests
mostly wait on real time, a server's client mostly waits on the server).

A conftest names what it can start early: servers (a name and their settings) and jobs
(a name and how to start a subprocess); `launch` starts those among the names the selected
tests use as fixtures; the fixtures ask for them by name (`server`, `job`), which starts
them then if they were not started early, and waits for them.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.harness.server import ROOT, Server, start_server, wait_ready


class Job:
    """A subprocess started now, its output in files (not pipes: a full pipe would stall
    it while nobody reads); `result()` waits for it."""

    def __init__(
        self, argv: Sequence[str], env: dict[str, str] | None = None, out: Path | None = None
    ):
        self.out = out  # where it writes, when the caller says
        self.stdout = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop
        self.process = subprocess.Popen(
            list(argv), cwd=ROOT, env=env, stdout=self.stdout, stderr=self.stderr, text=True
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


class Early:
    def __init__(
        self, servers: dict[str, dict[str, str]], jobs: dict[str, Callable[[], Job]]
    ) -> None:
        self.server_settings = servers
        self.job_starters = jobs
        self.servers: dict[str, Server] = {}
        self.jobs: dict[str, Job] = {}

    def launch(self, names: set[str]) -> None:
        """Start the servers and jobs among `names` that are not started yet."""
        for name in sorted(names & (set(self.server_settings) - set(self.servers))):
            self.servers[name] = start_server(None, self.server_settings[name])
        for name in sorted(names & (set(self.job_starters) - set(self.jobs))):
            self.jobs[name] = self.job_starters[name]()

    def server(self, name: str, timeout: float = 120) -> Server:
        self.launch({name})
        wait_ready(self.servers[name], timeout)
        return self.servers[name]

    def job(self, name: str) -> Job:
        self.launch({name})
        return self.jobs[name]

    def stop(self) -> None:
        for server in self.servers.values():
            server.terminate()  # their clean shutdowns overlap
        for server in self.servers.values():
            server.stop()
        for job in self.jobs.values():
            job.stop()
        self.servers.clear()
        self.jobs.clear()
