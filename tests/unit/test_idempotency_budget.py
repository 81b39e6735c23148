"""The byte budget for remembered Idempotency-Key answers, through HTTP on numpy fakes:
an answer that did not fit is never replayed nor applied again (409), and what is kept
stays within sessions x SERVICE_IDEMPOTENCY_MAX_BYTES_PER_SESSION."""

import gc
import tracemalloc
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests import fakes
from tests.unit.test_api_fakes import error, new_session

pytestmark = pytest.mark.unit


def serve(**settings: Any) -> TestClient:
    """The app builds its store from the settings (app.make_store), as `serve` does."""
    return TestClient(create_app(Settings(**settings), registry=fakes.registry()))


def steps(client: TestClient, sid: str) -> int:
    return int(client.get(f"/v1/sessions/{sid}").json()["steps"])


def big(n: int = 40) -> dict[str, Any]:
    """A step whose answer is ~170 bytes per input (8 probabilities each)."""
    return {"inputs": [1] * n, "return_probabilities": True}


def test_a_retry_of_an_answer_too_large_to_keep_is_409_and_applied_once() -> None:
    with serve(idempotency_max_bytes_per_session=1000) as client:
        sid = new_session(client)
        step = f"/v1/sessions/{sid}/step"
        first = client.post(step, json=big(), headers={"Idempotency-Key": "k-big"})
        assert first.status_code == 200 and len(first.content) > 1000
        assert steps(client, sid) == 40
        for _ in range(2):
            again = client.post(step, json=big(), headers={"Idempotency-Key": "k-big"})
            message = error(again, 409, "Idempotency-Key")
            assert again.json()["error"]["code"] == "idempotency_answer_too_large"
            assert "was applied" in message and "too large to replay" in message
            assert "SERVICE_IDEMPOTENCY_MAX_BYTES_PER_SESSION" in message
            assert "idempotent-replayed" not in again.headers
            assert steps(client, sid) == 40  # applied exactly once
        # the key is still known: another request with it is refused as before
        other = client.post(step, json={"inputs": [2]}, headers={"Idempotency-Key": "k-big"})
        assert "already used on this session" in error(other, 422, "Idempotency-Key")
        # answers that fit are replayed as before
        small = client.post(step, json={"inputs": [2]}, headers={"Idempotency-Key": "k-small"})
        replayed = client.post(step, json={"inputs": [2]}, headers={"Idempotency-Key": "k-small"})
        assert replayed.headers["idempotent-replayed"] == "true"
        assert replayed.content == small.content
        assert steps(client, sid) == 41


def test_an_answer_pushed_out_by_newer_ones_is_409_never_applied_again() -> None:
    with serve(idempotency_max_bytes_per_session=4000) as client:
        sid = new_session(client)
        step = f"/v1/sessions/{sid}/step"
        answers = {}
        for key in ("a", "b", "c"):  # ~1,800 bytes each: two fit
            r = client.post(step, json=big(10), headers={"Idempotency-Key": key})
            assert r.status_code == 200 and 1500 < len(r.content) < 2000
            answers[key] = r.content
        assert steps(client, sid) == 30
        r = client.post(step, json=big(10), headers={"Idempotency-Key": "a"})
        assert r.json()["error"]["code"] == "idempotency_answer_too_large", r.text
        for key in ("b", "c"):
            r = client.post(step, json=big(10), headers={"Idempotency-Key": key})
            assert r.headers["idempotent-replayed"] == "true" and r.content == answers[key]
        assert steps(client, sid) == 30


def test_the_default_budget_is_one_mebibyte() -> None:
    assert Settings().idempotency_max_bytes_per_session == 1024 * 1024


# the attack, smaller: 4 sessions x 20 keyed steps of ~44 KB answers (fakes)
SESSIONS, KEYS, INPUTS, BUDGET = 4, 20, 256, 128 * 1024


def remembered_answers(client: TestClient) -> int:
    """Bytes of answers sent for SESSIONS x KEYS keyed steps with large answers."""
    sent = 0
    for _ in range(SESSIONS):
        sid = new_session(client)
        for k in range(KEYS):
            r = client.post(
                f"/v1/sessions/{sid}/step", json=big(INPUTS), headers={"Idempotency-Key": f"k{k}"}
            )
            assert r.status_code == 200, r.text
            sent += len(r.content)
    return sent


@pytest.mark.slow  # tracemalloc over 5 MB of answers
def test_memory_kept_for_answers_is_bounded_by_sessions_times_the_budget() -> None:
    """Python heap retained after the attack: every answer before the budget (3.5 MB),
    at most sessions x budget with it, plus 1 MB for the rest (sessions, markers, the
    last request's leftovers). The access log is off: pytest keeps every log record."""
    with serve(access_log=False, idempotency_max_bytes_per_session=BUDGET) as client:
        new_session(client)  # warm: first-request allocations are not answers
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            sent = remembered_answers(client)
            gc.collect()
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    print(
        f"\n{SESSIONS} sessions x {KEYS} keyed steps, {sent / 1e6:.1f} MB of answers sent: "
        f"{kept / 1e6:.1f} MB retained (bound {SESSIONS} x {BUDGET / 1e6:.2f} MB)"
    )
    assert sent > 5 * SESSIONS * BUDGET  # the attack sends far more than the bound
    assert kept <= SESSIONS * BUDGET + 1_000_000
