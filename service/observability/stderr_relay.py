"""SERVICE_LOG_FORMAT=json: what bypasses Python's logging and writes to the process's
stderr itself (TensorFlow's C++ logging, a thread's uncaught traceback) as JSON lines.

The server's stderr (file descriptor 2) becomes a pipe into this small process, which
writes each line as {"level", "logger": "stderr", "message", "time"} to the real
stderr. A process rather than a thread: if the server dies by a native abort, its
last words are still in the pipe, and this process writes them out before it ends at
the end of its input. It ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole
process group), so it outlives the server's own shutdown lines.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from datetime import UTC, datetime
from typing import TextIO

ABSL_PREFIX = re.compile(r"([IWEF])\d{4} ")  # I0000 00:00:1795303897.757287 13266 port.cc:153]
LEVELS = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "CRITICAL"}
_child: subprocess.Popen[bytes] | None = None  # kept: it runs as long as the server


def as_json(line: str) -> str:
    prefix = ABSL_PREFIX.match(line)
    level = LEVELS[prefix.group(1)] if prefix else "WARNING"
    time = datetime.now(UTC).isoformat()
    record = {"level": level, "logger": "stderr", "message": line, "time": time}
    return json.dumps(record)


def relay() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for raw in sys.stdin.buffer:
        line = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
        if line.strip():
            sys.stdout.write(as_json(line) + "\n")
            sys.stdout.flush()


def start() -> TextIO:
    """Route this process's stderr through a relay; returns a stream on the real
    stderr, for the log handler (its lines are JSON already)."""
    global _child
    real = os.dup(2)
    _child = child = subprocess.Popen(
        [sys.executable, "-m", "service.observability.stderr_relay"],
        stdin=subprocess.PIPE,
        stdout=real,
    )
    assert child.stdin is not None
    os.dup2(child.stdin.fileno(), 2)  # from now on the pipe's only write end is fd 2
    child.stdin.close()
    return os.fdopen(real, "w", buffering=1, encoding="utf-8", errors="backslashreplace")


if __name__ == "__main__":
    relay()
