"""Test processes forked from one that has imported TensorFlow already.

Every server and job of the suite is a new Python process that imports TensorFlow, Keras
and the service: about 3 CPU-seconds each, for ~40 processes a run. The zygote is a
process that imports them once and then forks a child per `python -m <module>` (or
`python <script>`) the suite starts. The child is the same program in its own process:
its own settings (the environment replaced whole), working directory, arguments, output
files and niceness; it runs the module as `python -m` does (`runpy`, as `__main__`) and
exits as Python does (threads joined, atexit handlers run, output flushed, its exit
status), except that it does not tear down every module first (`os._exit`): ~0.9 CPU-s
saved per process with TensorFlow imported. Nothing in the zygote has run TensorFlow (no
graph, no eager context, no thread pool), so nothing is half-started in a child.

Each child is forked twice so that the test process becomes its parent (the test process
is a child subreaper, `prctl(PR_SET_CHILD_SUBREAPER)`): it waits for it, signals it and
reads its exit status as for any child (`Forked`, Popen's methods the tests use).

A command that never imports TensorFlow gains too: a CLI command forked from it ran in
0.045 s against 0.17 s from scratch (its imports done, its exit without teardown).

Only the tests use it (`enable()`, tests/conftest.py); the benchmarks, which time
start-ups, start processes from scratch. A process whose settings change what an import
does (TF_*, KERAS_*, thread-pool or loader variables) is started from scratch too.

Run as a script (`python tests/harness/zygote.py FD`) it is the zygote, serving the socket FD.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import json
import os
import runpy
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
# what the service imports on its way to serving (and the tests' model builders with it)
PRELOAD = (
    "tensorflow",
    "keras",
    "numpy",
    "uvicorn",
    "fastapi",
    "httpx",
    "service.cli",
    "service.config",
    "service.app",
    "service.server",
    "service.inference.compiled.loader",
)
# settings read when a module is imported (TensorFlow, Keras, thread pools, the loader):
# a child whose value differs from the zygote's starts from scratch
AT_IMPORT = ("TF_", "KERAS_", "OMP_", "MKL_", "OPENBLAS_", "CUDA", "XLA_", "LD_", "PYTHON")
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2"}  # as `python -m service` sets it before importing TF
PR_SET_CHILD_SUBREAPER = 36


class Forked:
    """A child of the zygote, adopted by this process: Popen's `pid`, `args`,
    `returncode`, `poll`, `wait`, `send_signal`, `terminate` and `kill`."""

    def __init__(self, pid: int, args: Sequence[str]):
        self.pid = pid
        self.args = list(args)
        self.returncode: int | None = None
        self.lock = threading.Lock()
        self.exited = os.pidfd_open(pid)  # readable once it has exited
        weakref.finalize(self, os.close, self.exited)

    def poll(self) -> int | None:
        with self.lock:
            if self.returncode is None:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            select.select([self.exited], [], [], left)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(15)

    def kill(self) -> None:
        self.send_signal(9)


class Zygote:
    """The zygote process, started on first use; `spawn` forks a child of it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.socket: socket.socket | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {**os.environ, **QUIET}
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - its import chatter, or why it failed

    def _start(self) -> socket.socket:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(theirs.fileno())],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        if ours.recv(64) != b"ready":
            self.log.seek(0)
            output = self.log.read().decode(errors="replace")[-5000:]
            raise RuntimeError(f"the zygote exited with {self.process.wait()}:\n{output}")
        return ours

    def fits(self, env: Mapping[str, str]) -> bool:
        """Whether a child with these settings can be forked (its imports would match)."""
        names = {name for name in (*env, *self.env) if name.startswith(AT_IMPORT)}
        return all(env.get(name) == self.env.get(name) for name in names - set(QUIET))

    def spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        stdout: IO[Any],
        stderr: IO[Any],
        nice: int = 0,
    ) -> Forked:
        """`argv`: `[python, "-m", module, *args]` or `[python, script, *args]`."""
        request = {"argv": list(argv[1:]), "env": dict(env), "cwd": str(cwd), "nice": nice}
        with self.lock:
            if self.socket is None:
                self.socket = self._start()
            socket.send_fds(
                self.socket, [json.dumps(request).encode()], [stdout.fileno(), stderr.fileno()]
            )
            answer = self.socket.recv(64).decode()
        if not answer.isdigit():
            raise RuntimeError(f"the zygote could not start {argv}: {answer}")
        return Forked(int(answer), argv)

    def stop(self) -> None:
        with self.lock:
            if self.socket is not None:
                self.socket.close()  # the zygote exits at the end of its socket
                self.socket = None
            if self.process is not None:
                self.process.wait(timeout=30)
                self.process = None
            self.log.close()


ZYGOTE: Zygote | None = None


def enable() -> None:
    """Start the suite's processes from the zygote (tests/conftest.py)."""
    global ZYGOTE
    ZYGOTE = ZYGOTE or Zygote()


def disable() -> None:
    global ZYGOTE
    if ZYGOTE is not None:
        ZYGOTE.stop()
    ZYGOTE = None


def popen(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdout: IO[Any],
    stderr: IO[Any] | int,
    nice: int = 0,
    cwd: Path = ROOT,
) -> subprocess.Popen[Any] | Forked:
    """`argv` started: forked from the zygote when it is enabled, this Python runs a
    module or a script (not `-c`) and its settings allow; else a new process. `stderr` may
    be `subprocess.STDOUT`."""
    err = stdout if stderr == subprocess.STDOUT else stderr
    runs = argv[0] == sys.executable and (argv[1] == "-m" or not argv[1].startswith("-"))
    if ZYGOTE is not None and runs and ZYGOTE.fits(env):
        assert not isinstance(err, int)
        return ZYGOTE.spawn(argv, env, cwd, stdout, err, nice)
    prefix = ["nice", "-n", str(nice)] if nice and shutil.which("nice") else []
    return subprocess.Popen([*prefix, *argv], cwd=cwd, env=env, stdout=stdout, stderr=stderr)


def run(
    argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`subprocess.run(argv, capture_output=True, text=True, timeout=...)`, by `popen`."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = popen(argv, dict(os.environ if env is None else env), out, err, cwd=cwd)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(list(argv), code, out.read(), err.read())


# ---- the zygote itself ----


def _serve(channel: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """Fork a child per request; return (in the child) its request and output files."""
    while True:
        message, fds, _, _ = socket.recv_fds(channel, 1 << 20, 2)
        if not message:
            sys.exit(0)  # the test process closed its end
        request = json.loads(message)
        sys.stdout.flush()
        sys.stderr.flush()
        read, write = os.pipe()
        middle = os.fork()
        if middle == 0:  # forks the child and exits: the child's parent becomes the tests'
            os.close(read)
            child = os.fork()
            if child == 0:
                os.close(write)
                channel.close()
                return request, fds
            os.write(write, str(child).encode())
            os._exit(0)
        os.close(write)
        answer = os.read(read, 32)
        os.close(read)
        os.waitpid(middle, 0)  # once it has exited, the child has been adopted
        for fd in fds:
            os.close(fd)
        channel.send(answer or b"the fork failed")


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """This child, set up as `python argv...` with its settings would be."""
    os.dup2(fds[0], 1)
    os.dup2(fds[1], 2)
    for fd in fds:
        os.close(fd)
    if request["nice"]:
        os.nice(request["nice"])
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = request["cwd"]  # as `python -m` puts the working directory first


def _run(argv: list[str]) -> int:
    """`python argv...` in this process: its exit status, as the interpreter gives it."""
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = argv
            sys.path[0] = str(Path(argv[0]).resolve().parent)  # as `python script` does
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()  # as the interpreter reports an uncaught exception
        return 1
    return 0


def _exit(code: int) -> None:
    """Exit as the interpreter does (threads joined, atexit handlers run, output flushed)
    but without tearing down every module: with TensorFlow imported that takes ~1 s
    (~0.9 CPU-s) per process, in every server the suite stops."""
    threading._shutdown()  # type: ignore[attr-defined]  # joins non-daemon threads
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    ours = socket.socket(fileno=int(sys.argv[1]))
    sys.path[0] = str(ROOT)
    os.environ.update(QUIET)
    for name in PRELOAD:
        importlib.import_module(name)
    ours.send(b"ready")
    request, fds = _serve(ours)
    _become(request, fds)
    _exit(_run(request["argv"]))
