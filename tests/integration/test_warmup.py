"""SERVICE_WARMUP over HTTP: a server that compiles beam, sampling and probability graphs
on first use answers exactly as one that compiled everything at load; concurrent first
requests for a graph compile it once; a bad value stops start-up, naming the setting."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.floats import assert_close
from tests.harness import Server, running
from tests.harness.early import Plan
from tests.harness.http import HTTP
from tests.integration.conftest import EARLY

pytestmark = pytest.mark.integration

SOURCE = [20, 36, 40, 10, 34, 28]
BEAM = {"strategy": "beam", "beam_width": 3, "num_return_sequences": 2, "return_scores": True}
SAMPLE = {"strategy": "sample", "seed": 7, "temperature": 0.8, "return_probabilities": True}


# both start in the background before this module's tests (tests/harness/early.py)
EARLY.plan("warmup_all", Plan({"SERVICE_WARMUP": "all"}, fixture="everything"))
# two compute threads: two batchers' first calls of one graph can overlap
LAZY = {"SERVICE_WARMUP": "lazy", "SERVICE_COMPUTE_THREADS": "2", "SERVICE_LOG_LEVEL": "info"}
EARLY.plan("warmup_lazy", Plan(LAZY, fixture="lazy"))


@pytest.fixture(scope="module")
def everything() -> Iterator[str]:
    try:
        yield EARLY.server("warmup_all").url
    finally:
        EARLY.release("warmup_all")


@pytest.fixture(scope="module")
def lazy() -> Iterator[tuple[str, Server]]:
    try:
        server = EARLY.server("warmup_lazy")
        yield server.url, server
    finally:
        EARLY.release("warmup_lazy")


def post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = HTTP.post(f"{url}{path}", json=body, timeout=60)
    assert r.status_code in (200, 201), r.text
    answer: dict[str, Any] = r.json()
    return answer


def same(got: Any, want: Any, where: str = "answer") -> None:
    """Tokens, texts and every other field equal; floats within tests/floats.py's
    tolerance. Session ids differ by nature."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), where
        for key in want.keys() - {"session_id", "created_at", "expires_at"}:
            same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert_close(got, want, where)
    else:
        assert got == want, where


def conversation(url: str) -> list[dict[str, Any]]:
    """Beam, sampled and probability-returning requests, each a graph greedy serving
    does not use: through /predict and through sessions."""
    answers = [
        post(url, "/predict", {"inputs": [SOURCE, SOURCE[::-1]], **BEAM}),
        post(url, "/predict", {"inputs": [SOURCE], "return_probabilities": True}),
        post(url, "/predict", {"model": "dates", "inputs": ["21 Nov 2026", "11/21/26"], **SAMPLE}),
    ]
    for options in (BEAM, SAMPLE):
        sid = post(url, "/v1/sessions", {"model": "reverse", "source": SOURCE})["session_id"]
        answers.append(post(url, f"/v1/sessions/{sid}/generate", {"max_steps": 3, **options}))
    sid = post(url, "/v1/sessions", {"model": "reverse", "source": SOURCE})["session_id"]
    answers.append(
        post(url, f"/v1/sessions/{sid}/step", {"inputs": [0, 28], "return_probabilities": True})
    )
    return answers


def test_a_lazy_server_answers_as_one_that_compiled_everything(
    everything: str, lazy: tuple[str, Server]
) -> None:
    url, server = lazy
    assert "compiled beam_decode" not in server.output()
    same(conversation(url), conversation(everything))
    log = server.output()
    for graph in ("beam_decode", "decode_probs", "beam", "run_probs"):
        assert log.count(f"reverse v1: compiled {graph} on first use") == 1, log[-3000:]


def test_concurrent_first_requests_compile_a_graph_once(
    everything: str, lazy: tuple[str, Server]
) -> None:
    """/predict on a step model and a session step both run "run_probs", from two
    batchers on two compute threads: the first calls of each wait for one trace."""
    url, server = lazy
    compiled = "memory v1: compiled run_probs on first use"
    assert compiled not in server.output()
    history = [3, 0, 1, 2, 4]
    predict = {"inputs": [history], "return_probabilities": True}
    step = {"inputs": history, "return_probabilities": True}

    def ask(base: str, session: bool) -> dict[str, Any]:
        if not session:
            return post(base, "/v1/models/memory/predict", predict)
        sid = sessions[base].pop()
        return post(base, f"/v1/sessions/{sid}/step", step)

    sessions = {
        base: [post(base, "/v1/sessions", {"model": "memory"})["session_id"] for _ in range(4)]
        for base in (url, everything)
    }
    kinds = [False, True] * 4
    with ThreadPoolExecutor(len(kinds)) as pool:
        answers = list(pool.map(lambda session: ask(url, session), kinds))
    for answer, session in zip(answers, kinds, strict=True):
        same(answer, ask(everything, session))
    assert server.output().count(compiled) == 1, server.output()[-3000:]


def test_a_bad_value_stops_start_up_naming_the_setting() -> None:
    with pytest.raises(RuntimeError) as failed, running({"SERVICE_WARMUP": "eager"}, timeout=60):
        pass
    message = str(failed.value)
    assert "exited with 2" in message
    assert "SERVICE_WARMUP must be one of all, background, lazy, not 'eager'" in message
