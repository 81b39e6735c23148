"""A redis-server of our own, on a free port, in a temporary directory (its log there too).

With `persistent` every write goes to the append-only file and is fsynced before Redis
answers (appendfsync always), so a clean stop and a start on the same directory keep every
session; without it (the tests' default) a restart comes back empty.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.harness.ports import free_port


class RedisServer:
    def __init__(
        self, port: int | None = None, persistent: bool = False, options: tuple[str, ...] = ()
    ):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: `make test` and .ci/run install it "
                "(apt-get install redis-server)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-"))
        self.persistent = persistent
        self.options = options  # more redis-server options (e.g. cluster mode)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.dir / "redis.log"

    def start(self, timeout: float = 20) -> RedisServer:
        """Start (again: same port, same directory) and wait until it answers PING."""
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                *(persistence if self.persistent else ["--appendonly", "no"]),
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(self.log),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"redis-server on port {self.port} did not answer PING")

    def stop(self) -> None:
        """SIGTERM: Redis's clean shutdown (it flushes the append-only file), then exit."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: a hung Redis (connections open, nothing answered) until `resume`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Gone for good: killed (even if paused) and its directory removed."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)
