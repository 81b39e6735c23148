import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from httpx import Client

from tests.floats import assert_close
from tests.harness import STORE
from tests.harness.early import Plan
from tests.harness.http import HTTP
from tests.integration.conftest import EARLY
from tests.integration.reference import NumpyLSTM, layer_weights, one_hot, sigmoid

pytestmark = pytest.mark.integration


def create(http: Client, **body: Any) -> str:
    r = http.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


def state(http: Client, sid: str) -> list[np.ndarray]:
    r = http.get(f"/v1/sessions/{sid}", params={"include_state": "true"})
    return [np.asarray(t) for t in r.json()["state"]]


def test_one_value_per_request_equals_one_call_over_the_history(http: Client) -> None:
    history = [3, 0, 1, 2, 4, 0, 1, 2, 3, 3, 0]
    stepwise = create(http, model="memory")
    outputs = []
    for value in history:
        r = http.post(f"/v1/sessions/{stepwise}/step", json={"inputs": [value]}).json()
        outputs += r["outputs"]
    whole = create(http, model="memory")
    r = http.post(f"/v1/sessions/{whole}/step", json={"inputs": history}).json()
    assert r["outputs"] == outputs and r["steps"] == len(history)
    for a, b in zip(state(http, stepwise), state(http, whole), strict=True):
        assert_close(a, b)
    # and /predict over the whole history from a zero state agrees too
    p = http.post("/v1/models/memory/predict", json={"inputs": [history]}).json()
    assert p["outputs"][0] == outputs


def test_session_state_matches_a_numpy_lstm(http: Client) -> None:
    step_file = STORE / "memory" / "1" / "step.keras"
    lstm = NumpyLSTM(*layer_weights(step_file, "lstm"))
    dense_w, dense_b = layer_weights(step_file, "probabilities")
    sid = create(http, model="memory")
    h = c = np.zeros(20)
    for value in (4, 0, 1, 2):
        r = http.post(
            f"/v1/sessions/{sid}/step", json={"inputs": [value], "return_probabilities": True}
        ).json()
        h, c = lstm.step(one_hot(value, 5), h, c)
        assert_close(r["probabilities"][0], sigmoid(h @ dense_w + dense_b))
    got_h, got_c = state(http, sid)
    assert_close(got_h, h)
    assert_close(got_c, c)


def test_set_state_like_keras_reset_states(http: Client) -> None:
    sid = create(http, model="memory")
    first = http.post(
        f"/v1/sessions/{sid}/step", json={"inputs": [3], "return_probabilities": True}
    ).json()
    http.post(f"/v1/sessions/{sid}/step", json={"inputs": [0, 1]})
    r = http.put(f"/v1/sessions/{sid}/state", json={"state": [[0.0] * 20, [0.0] * 20]})
    assert r.status_code == 200
    again = http.post(
        f"/v1/sessions/{sid}/step", json={"inputs": [3], "return_probabilities": True}
    ).json()
    assert again["outputs"] == first["outputs"]
    assert_close(again["probabilities"], first["probabilities"])
    http.put(f"/v1/sessions/{sid}/state", json={"state": [[1.0] * 20, [1.0] * 20]})
    ones = http.post(
        f"/v1/sessions/{sid}/step", json={"inputs": [3], "return_probabilities": True}
    ).json()
    assert (
        np.max(np.abs(np.asarray(ones["probabilities"]) - np.asarray(first["probabilities"])))
        > 1e-3
    )
    # a state read back and written again is bit-for-bit the same: exact by construction
    # (float32 -> JSON shortest repr of its float64 value -> float32 is lossless)
    saved = http.get(f"/v1/sessions/{sid}?include_state=true").json()["state"]
    http.put(f"/v1/sessions/{sid}/state", json={"state": saved})
    assert http.get(f"/v1/sessions/{sid}?include_state=true").json()["state"] == saved


def test_seq2seq_session_generate_and_teacher_forcing(http: Client) -> None:
    source = [20, 36, 40, 10, 34, 28]
    sid = create(http, model="reverse", source=source)
    r = http.post(f"/v1/sessions/{sid}/generate", json={"max_steps": 3}).json()
    assert r["outputs"] == [40, 36, 20] and r["steps"] == 3
    # feeding the start token and the targets by hand gives the same predictions
    forced = create(http, model="reverse", source=source)
    r = http.post(f"/v1/sessions/{forced}/step", json={"inputs": [0, 40, 36]}).json()
    assert r["outputs"] == [40, 36, 20]
    a, b = state(http, sid), state(http, forced)
    for x, y in zip(a, b, strict=True):
        assert_close(x, y)


def test_concurrent_steps_on_one_session_are_serialised(server_url: str) -> None:
    with Client(base_url=server_url, timeout=60) as http:
        sid = create(http, model="memory")
    rng = np.random.default_rng(7)
    values = rng.integers(0, 5, size=60).tolist()

    def step(value: int) -> dict[str, Any]:
        r = HTTP.post(f"{server_url}/v1/sessions/{sid}/step", json={"inputs": [value]}, timeout=60)
        assert r.status_code == 200
        return {"value": value, **r.json()}

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(step, values))
    with Client(base_url=server_url, timeout=60) as http:
        assert http.get(f"/v1/sessions/{sid}").json()["steps"] == len(values)
        assert sorted(a["steps"] for a in answers) == list(range(1, len(values) + 1))
        order = [a["value"] for a in sorted(answers, key=lambda a: a["steps"])]
        replay = create(http, model="memory")
        r = http.post(f"/v1/sessions/{replay}/step", json={"inputs": order}).json()
        assert r["outputs"] == [a["outputs"][0] for a in sorted(answers, key=lambda a: a["steps"])]
        for x, y in zip(state(http, sid), state(http, replay), strict=True):
            assert_close(x, y)


def test_failed_requests_leave_the_session_as_it_was(http: Client) -> None:
    sid = create(http, model="memory")
    http.post(f"/v1/sessions/{sid}/step", json={"inputs": [3, 0]})
    before = http.get(f"/v1/sessions/{sid}?include_state=true").json()
    bad = [
        ("post", "step", {"inputs": [5]}, "inputs[0]"),
        ("post", "step", {"inputs": [1, None]}, "inputs[1]"),
        ("post", "generate", {"max_steps": 0}, "max_steps"),
        ("put", "state", {"state": [[0.0] * 19, [0.0] * 20]}, "state[0]"),
        ("put", "state", {"state": [[0.0] * 20]}, "state"),
    ]
    for method, path, body, field in bad:
        r = http.request(method.upper(), f"/v1/sessions/{sid}/{path}", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["field"] == field
    after = http.get(f"/v1/sessions/{sid}?include_state=true").json()
    assert after["state"] == before["state"] and after["steps"] == 2
    r = http.post(f"/v1/sessions/{sid}/generate", json={"max_steps": 2})
    assert r.status_code == 200 and r.json()["steps"] == 4


def test_unknown_session_is_404(http: Client) -> None:
    for method, path in [
        ("GET", ""),
        ("POST", "/step"),
        ("POST", "/generate"),
        ("PUT", "/state"),
        ("POST", "/reset"),
        ("DELETE", ""),
    ]:
        body = (
            {"inputs": [1]}
            if path == "/step"
            else {"state": [[0]]}
            if path == "/state"
            else {}
            if path == "/generate"
            else None
        )
        r = http.request(method, f"/v1/sessions/nope{path}", json=body)
        assert r.status_code == 404, (method, path, r.text)


TTL = 3.0
EARLY.plan(
    "expiry_server", Plan({"SERVICE_SESSION_TTL_SECONDS": str(TTL), "SERVICE_MAX_SESSIONS": "2"})
)


@pytest.fixture
def expiry_server() -> Iterator[str]:
    """A server of its own, with a short TTL and a cap of 2 sessions."""
    try:
        yield EARLY.server("expiry_server").url
    finally:
        EARLY.release("expiry_server")


def test_expiry_and_cap_on_a_configured_server(expiry_server: str) -> None:
    """Real time: "alive" checks have seconds of slack and the "expired" check waits
    until the TTL has passed since the session was last touched."""
    ttl = TTL
    with Client(base_url=expiry_server, timeout=30) as http:
        kept = create(http, model="memory")
        doomed = create(http, model="memory")
        doomed_due = time.monotonic() + ttl
        r = http.post("/v1/sessions", json={"model": "memory"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= ttl + 1
        assert "capacity" in r.json()["error"]["message"]
        while time.monotonic() < doomed_due + 0.05:  # keep one busy, the other idles
            time.sleep(0.25)
            assert http.get(f"/v1/sessions/{kept}").status_code == 200
        assert http.get(f"/v1/sessions/{doomed}").status_code == 404
        create(http, model="memory")  # room again
