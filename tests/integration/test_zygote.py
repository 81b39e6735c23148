"""The harness's zygote (tests/harness/zygote.py): a child forked from it is the program
it was asked for, with its own settings, directory, arguments, output and exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import zygote

pytestmark = pytest.mark.integration

PROGRAM = """
import os, sys
print(os.environ.get("ZYGOTE_TEST"), os.getcwd(), sys.argv[1:], __name__)
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]))
"""


def test_a_child_runs_as_its_own_program(tmp_path: Path) -> None:
    (tmp_path / "program.py").write_text(PROGRAM)
    env = {**os.environ, "ZYGOTE_TEST": "set"}
    for argv in ([sys.executable, "-m", "program", "3"], [sys.executable, "program.py", "3"]):
        out, err = (tmp_path / "out").open("w+"), (tmp_path / "err").open("w+")
        with out, err:
            child = zygote.popen(argv, env, out, err, cwd=tmp_path)
            assert isinstance(child, zygote.Forked)
            assert child.wait(timeout=60) == 3
            out.seek(0)
            err.seek(0)
            assert out.read() == f"set {tmp_path} ['3'] __main__\n"
            assert err.read() == "to stderr\n"


def test_a_signal_ends_a_child_as_it_ends_a_process(tmp_path: Path) -> None:
    (tmp_path / "waits.py").write_text("import time\ntime.sleep(600)\n")
    with (tmp_path / "out").open("w+") as out:
        argv = [sys.executable, str(tmp_path / "waits.py")]
        child = zygote.popen(argv, dict(os.environ), out, out)
        assert isinstance(child, zygote.Forked)
        assert child.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=0.1)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == -signal.SIGTERM


def test_settings_read_at_import_or_code_to_run_start_a_new_process(tmp_path: Path) -> None:
    (tmp_path / "program.py").write_text(PROGRAM)
    script = [sys.executable, str(tmp_path / "program.py"), "0"]
    with (tmp_path / "out").open("w+") as out:
        changed = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
        for argv, env in ((script, changed), ([*script[:1], "-c", ""], dict(os.environ))):
            child = zygote.popen(argv, env, out, out)
            assert isinstance(child, subprocess.Popen)
            assert child.wait(timeout=60) == 0
