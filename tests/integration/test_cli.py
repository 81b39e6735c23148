"""`python -m service predict|session|models` against a real server process."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from service.client import ModelList, ModelVersionInfo, PredictResponse, SessionInfo
from tests.harness import free_port, zygote

pytestmark = pytest.mark.integration

SOURCE = "20 36 40 10 34 28"


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    # "--url" goes before any "--" (after which everything is positional)
    cut = args.index("--") if "--" in args else len(args)
    return zygote.run(
        [sys.executable, "-m", "service", *args[:cut], "--url", url, *args[cut:]], timeout=120
    )


def ok(url: str, *args: str) -> str:
    done = cli(url, *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout


def failed(url: str, *args: str, status: int = 1) -> str:
    done = cli(url, *args)
    assert done.returncode == status, done.stdout
    assert "Traceback" not in done.stderr and done.stdout == ""
    return done.stderr


def test_cli_models(server_url: str) -> None:
    table = ok(server_url, "models")
    assert all(name in table for name in ("reverse", "dates", "memory", "seq2seq", "step"))
    listed = ModelList.model_validate_json(ok(server_url, "models", "--json"))
    assert {m.name for m in listed.models} >= {"reverse", "dates", "memory"}
    detail = ok(server_url, "models", "dates")
    assert "tokenizer 'char'" in detail and "memory shape" in detail
    version = ModelVersionInfo.model_validate_json(
        ok(server_url, "models", "reverse", "--version", "1", "--json")
    )
    assert version.state_shapes == [[128], [128]]


def test_cli_predict(server_url: str, http: httpx.Client) -> None:
    assert ok(server_url, "predict", "--model", "reverse", SOURCE) == "40 36 20\n"
    answer = ok(server_url, "predict", "--model", "reverse", SOURCE, "1,2,3,4,5,6", "--json")
    raw = http.post(
        "/predict",
        json={"model": "reverse", "inputs": [[20, 36, 40, 10, 34, 28], [1, 2, 3, 4, 5, 6]]},
    )
    assert json.loads(answer) == raw.json()
    assert PredictResponse.model_validate_json(answer).outputs == [[40, 36, 20], [3, 2, 1]]
    assert ok(server_url, "predict", "--model", "dates", "21 Nov 2026") == "2026-11-21\n"
    table = ok(
        server_url, "predict", "--model", "dates", "--version", "1", "11/21/26", "2026.11.21"
    )
    assert table.count("2026-11-21") == 2 and "11/21/26" in table
    # the server's default model (reverse), and a decode step limit
    assert ok(server_url, "predict", SOURCE, "--max-steps", "2") == "40 36\n"


def test_cli_session(server_url: str) -> None:
    sid = ok(server_url, "session", "create", "--model", "memory").strip()
    stepped = ok(server_url, "session", "step", sid, "3 0 1").splitlines()
    assert stepped == ["0 1 2", "steps: 3"]
    generated = ok(server_url, "session", "generate", sid, "--json")
    assert json.loads(generated)["steps"] > 3
    shown = SessionInfo.model_validate_json(
        ok(server_url, "session", "show", sid, "--state", "--json")
    )
    assert shown.session_id == sid and shown.state is not None and len(shown.state) == 2
    assert "state[1]" in ok(server_url, "session", "show", sid, "--state")
    assert ok(server_url, "session", "reset", sid) == f"reset {sid}: steps 0\n"
    assert ok(server_url, "session", "delete", sid) == f"deleted {sid}\n"
    message = failed(server_url, "session", "show", sid)
    assert message.startswith(f"error 404 not_found: session '{sid}' not found")
    dates = ok(server_url, "session", "create", "--model", "dates", "--source", "21 Nov 2026")
    text = ok(server_url, "session", "generate", dates.strip()).splitlines()
    assert text[0] == "2026-11-21"
    ok(server_url, "session", "delete", dates.strip())


def test_cli_errors(server_url: str) -> None:
    message = failed(server_url, "predict", "--model", "nope", SOURCE)
    assert message.startswith("error 404 not_found: model 'nope' not found")
    message = failed(server_url, "predict", "--model", "reverse", "20 99")
    assert message.startswith("error 422 invalid_input: inputs[0][1]: token 99 is out of range")
    message = failed(server_url, "session", "show", "--", "-older-id")  # ids from before
    assert message.startswith("error 404 not_found: session '-older-id' not found")
    message = failed(server_url, "session", "generate", "no-such-session")
    assert message.startswith("error 404 not_found")
    # refused before anything is sent: exit status 2, as for a bad command line
    assert "top_p" in failed(server_url, "predict", SOURCE, "--top-p", "2", status=2)
    # nothing listening there
    nowhere = f"http://127.0.0.1:{free_port()}"
    message = failed(nowhere, "models", "--retries", "0")
    assert message.startswith("error: cannot reach the server") and "refused" in message


# Beam search, sampling and streaming (the decoding options and server-sent events).


def test_cli_beam(server_url: str) -> None:
    beam = ["--strategy", "beam", "--beam-width", "4", "--num-return-sequences", "2", "--scores"]
    answer = PredictResponse.model_validate_json(
        ok(server_url, "predict", "--model", "reverse", SOURCE, *beam, "--json")
    )
    assert answer.sequences is not None and len(answer.sequences[0]) == 2
    assert answer.sequences[0][0] == [40, 36, 20]
    table = ok(server_url, "predict", "--model", "reverse", SOURCE, *beam)
    assert "40 36 20" in table and "score" in table


def test_cli_sample(server_url: str) -> None:
    sample = ["--strategy", "sample", "--seed", "7", "--temperature", "1.5"]
    first = ok(server_url, "predict", "--model", "reverse", SOURCE, *sample)
    assert first.splitlines()[-1] == "seed: 7"
    assert ok(server_url, "predict", "--model", "reverse", SOURCE, *sample) == first


def test_cli_stream(server_url: str) -> None:
    lines = ok(server_url, "predict", "--model", "reverse", SOURCE, "--stream", "--json")
    events = [json.loads(line) for line in lines.splitlines()]
    assert [e.get("token") for e in events[:3]] == [40, 36, 20]
    assert events[3]["outputs"] == [[40, 36, 20]] and len(events) == 4
    assert ok(server_url, "predict", "--model", "reverse", SOURCE, "--stream") == (
        "40 36 20\n40 36 20\n"
    )
    sid = ok(server_url, "session", "create", "--model", "reverse", "--source", SOURCE).strip()
    lines = ok(server_url, "session", "generate", sid, "--max-steps", "3", "--stream", "--json")
    events = [json.loads(line) for line in lines.splitlines()]
    assert [e.get("token") for e in events[:3]] == [40, 36, 20] and events[3]["steps"] == 3
    ok(server_url, "session", "delete", sid)
