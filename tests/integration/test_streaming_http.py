"""Server-sent events on the shipped models, read with an SSE client (httpx-sse): a
streamed answer is the unstreamed one, token by token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.floats import assert_close

pytestmark = pytest.mark.integration


def streamed(
    http: httpx.Client, path: str, body: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The token events' data and the result's."""
    with connect_sse(http, "POST", path, json={**body, "stream": True}) as events:
        assert events.response.status_code == 200
        assert events.response.headers["content-type"].startswith("text/event-stream")
        assert events.response.headers["cache-control"] == "no-cache"
        received = [(e.event, e.json()) for e in events.iter_sse()]
    names = [name for name, _ in received]
    assert names == ["token"] * (len(names) - 1) + ["result"], names
    return [data for _, data in received[:-1]], received[-1][1]


def test_a_greedy_stream_is_the_unstreamed_answer_token_by_token(http: httpx.Client) -> None:
    body = {"model": "dates", "inputs": ["21 Nov 2026"], "return_scores": True}
    tokens, result = streamed(http, "/predict", body)
    plain = http.post("/predict", json=body).json()
    assert result["outputs"] == plain["outputs"] == ["2026-11-21"]
    assert [t["index"] for t in tokens] == list(range(len(tokens)))
    assert "".join(t["text"] for t in tokens) == "2026-11-21"
    assert tokens[-1]["token"] == "\n"  # the end token ends the stream
    assert_close([t["score"] for t in tokens], plain["step_scores"][0][0])
    assert_close(result["scores"], plain["scores"])


def test_a_sampled_stream_draws_what_the_same_seed_draws_unstreamed(http: httpx.Client) -> None:
    for seed in (1, 2, 3):
        body = {
            "model": "dates",
            "inputs": ["3/4/99"],
            "strategy": "sample",
            "seed": seed,
            "temperature": 2.0,
            "top_p": 0.95,
        }
        tokens, result = streamed(http, "/predict", body)
        plain = http.post("/predict", json=body).json()
        assert result == plain and result["seed"] == seed
        assert "".join(t["text"] for t in tokens) == plain["outputs"][0]


def test_beam_search_streams_only_its_result(http: httpx.Client) -> None:
    body = {"inputs": [[20, 36, 40, 10, 34, 28]], "strategy": "beam"}
    tokens, result = streamed(http, "/v1/models/reverse/predict", body)
    assert tokens == []
    plain = http.post("/predict", json={**body, "model": "reverse"}).json()
    assert result["outputs"] == plain["outputs"] == [[40, 36, 20]]
    assert_close(result["scores"], plain["scores"])


def test_a_step_model_streams_one_output_per_input_value(http: httpx.Client) -> None:
    tokens, result = streamed(http, "/predict", {"model": "memory", "inputs": [[4, 0, 1, 2]]})
    assert [t["token"] for t in tokens] == [0, 1, 2, 4] == result["outputs"][0]


def test_a_streamed_session_generate_leaves_the_state_an_unstreamed_one_does(
    http: httpx.Client,
) -> None:
    ids = [
        http.post("/v1/sessions", json={"model": "dates", "source": "11/21/26"}).json()[
            "session_id"
        ]
        for _ in range(2)
    ]
    tokens, result = streamed(http, f"/v1/sessions/{ids[0]}/generate", {"max_steps": 4})
    plain = http.post(f"/v1/sessions/{ids[1]}/generate", json={"max_steps": 4}).json()
    assert result["outputs"] == plain["outputs"] == [t["token"] for t in tokens]
    assert result["steps"] == plain["steps"] == 4 and result["text"] == "2026"
    states = [
        http.get(f"/v1/sessions/{i}", params={"include_state": True}).json()["state"] for i in ids
    ]
    assert_close(states[0], states[1])
    # and both go on alike
    more = [http.post(f"/v1/sessions/{i}/generate", json={}).json()["text"] for i in ids]
    assert more[0] == more[1] == "-11-21"
    for i in ids:
        http.delete(f"/v1/sessions/{i}")


def test_requests_a_stream_cannot_serve_are_ordinary_error_answers(http: httpx.Client) -> None:
    two = http.post("/predict", json={"model": "dates", "inputs": ["1/2/03", "x"], "stream": True})
    assert two.status_code == 422 and two.headers["content-type"] == "application/json"
    assert (
        two.json()["error"]["field"] == "inputs" and "one input" in two.json()["error"]["message"]
    )
    missing = http.post("/predict", json={"model": "nope", "inputs": [[1]], "stream": True})
    assert missing.status_code == 404
    session = http.post("/v1/sessions", json={"model": "dates", "source": "1/2/03"}).json()
    keyed = http.post(
        f"/v1/sessions/{session['session_id']}/generate",
        json={"stream": True},
        headers={"Idempotency-Key": "k1"},
    )
    assert keyed.status_code == 422 and keyed.json()["error"]["field"] == "stream"
    assert "Idempotency-Key" in keyed.json()["error"]["message"]
    unknown = http.post(f"/v1/sessions/{'x' * 32}/generate", json={"stream": True})
    assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "session_id"
