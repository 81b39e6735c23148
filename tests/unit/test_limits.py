"""Per-request bounds through HTTP (in-process ASGI) on numpy fakes: work, probability
payload and body size, each refused before any compute with the setting named."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.sessions.memory import MemorySessionStore
from tests import fakes
from tests.unit.test_api_fakes import error, new_session

pytestmark = pytest.mark.unit


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(
        max_batch_size=4,
        max_sequence_length=6,
        max_decode_steps=10,
        max_steps_per_request=20,
        max_probabilities_per_request=40,  # fake models output 8 probabilities per step
        max_body_bytes=2048,
    )
    store = MemorySessionStore(settings.session_ttl_seconds, settings.max_sessions)
    app = create_app(settings, registry=fakes.registry(), store=store)
    with TestClient(app) as c:
        yield c


def test_predict_work_is_bounded(client: TestClient) -> None:
    inputs = [[1, 2]] * 4
    # 8 source tokens + 4 sequences x 3 steps = 20: at the limit
    ok = client.post("/v1/models/counter/predict", json={"inputs": inputs, "max_steps": 3})
    assert ok.status_code == 200 and len(ok.json()["outputs"][0]) == 3
    r = client.post("/v1/models/counter/predict", json={"inputs": inputs, "max_steps": 4})
    msg = error(r, 422, "inputs")
    assert "24 model steps (8 source tokens + 4 sequences x 4 max_steps)" in msg
    assert "limit is 20 per request (SERVICE_MAX_STEPS_PER_REQUEST)" in msg
    # a step model: one step per input value
    r = client.post("/v1/models/stepper/predict", json={"inputs": [[1] * 6] * 4})
    msg = error(r, 422, "inputs")
    assert "24 model steps (24 input values in 4 sequences)" in msg


def test_probability_payload_is_bounded(client: TestClient) -> None:
    body = {"inputs": [[1], [2]], "max_steps": 3}
    assert client.post("/v1/models/counter/predict", json=body).status_code == 200
    r = client.post("/v1/models/counter/predict", json={**body, "return_probabilities": True})
    msg = error(r, 422, "return_probabilities")
    assert "48 probabilities (6 outputs x 8 each)" in msg
    assert "limit is 40 per request (SERVICE_MAX_PROBABILITIES_PER_REQUEST)" in msg
    r = client.post("/v1/models/counter/predict", json={**body, "max_steps": 2, "inputs": [[1]]})
    assert r.status_code == 200


def test_session_work_is_bounded_and_leaves_the_session_unchanged(client: TestClient) -> None:
    sid = new_session(client)
    r = client.post(
        f"/v1/sessions/{sid}/step", json={"inputs": [1] * 6, "return_probabilities": True}
    )
    assert "SERVICE_MAX_PROBABILITIES_PER_REQUEST" in error(r, 422, "return_probabilities")
    assert client.get(f"/v1/sessions/{sid}").json()["steps"] == 0
    ok = client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1] * 6})
    assert ok.status_code == 200 and ok.json()["steps"] == 6

    seq = new_session(client, model="counter")
    r = client.post(
        f"/v1/sessions/{seq}/generate", json={"max_steps": 6, "return_probabilities": True}
    )
    assert "48 probabilities" in error(r, 422, "return_probabilities")
    ok = client.post(f"/v1/sessions/{seq}/generate", json={"max_steps": 5})
    assert ok.status_code == 200 and ok.json()["steps"] == 5


def test_body_over_the_limit_is_413_before_parsing(client: TestClient) -> None:
    big = b'{"inputs": [[' + b"1, " * 1000 + b"1]]}"  # 3,017 bytes
    r = client.post("/v1/models/counter/predict", content=big)
    msg = error(r, 413, "body")
    assert "3,017 bytes exceeds the limit of 2,048 bytes (SERVICE_MAX_BODY_BYTES)" in msg
    # no Content-Length (chunked): counted as it arrives
    r = client.post("/v1/models/counter/predict", content=iter([big[:1500], big[1500:]]))
    msg = error(r, 413, "body")
    assert "3,017 bytes received so far exceed the limit of 2,048 bytes" in msg
    # under the limit, the same route answers
    assert client.post("/v1/models/counter/predict", json={"inputs": [[1]]}).status_code == 200
