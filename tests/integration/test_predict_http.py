import numpy as np
import pytest
from httpx import Client

from tests.floats import assert_close
from tests.harness import STORE
from tests.integration.reference import NumpyLSTM, layer_weights, one_hot

pytestmark = pytest.mark.integration


def test_reverse_example_from_the_reference(http: Client) -> None:
    r = http.post("/predict", json={"inputs": [[20, 36, 40, 10, 34, 28]], "max_steps": 3})
    assert r.status_code == 200
    assert r.json() == {"model": "reverse", "version": "1", "outputs": [[40, 36, 20]]}


def test_three_predict_routes_agree(http: Client) -> None:
    body = {"inputs": [[5, 17, 33, 2, 9, 50], [1, 2, 3, 4, 5, 6]]}
    answers = [
        http.post("/predict", json=body).json(),
        http.post("/predict", json={**body, "model": "reverse", "version": "1"}).json(),
        http.post("/v1/models/reverse/predict", json=body).json(),
        http.post("/v1/models/reverse/versions/1/predict", json=body).json(),
    ]
    assert all(a == answers[0] for a in answers)
    assert answers[0]["outputs"] == [[33, 17, 5], [3, 2, 1]]


def test_batch_with_mixed_lengths_equals_single_requests(http: Client) -> None:
    sources = [[20, 36, 40, 10, 34, 28], [7, 8, 9], [1, 2, 3, 4, 5, 6, 7, 8], [44, 12, 3, 8, 9, 1]]
    body = {"inputs": sources, "max_steps": 5, "return_probabilities": True}
    batched = http.post("/predict", json=body).json()
    for i, source in enumerate(sources):
        single = http.post("/predict", json={**body, "inputs": [source]}).json()
        assert single["outputs"][0] == batched["outputs"][i]
        # a batch takes other float32 kernel paths than a single row: within tolerance
        assert_close(single["probabilities"][0], batched["probabilities"][i])


def test_probabilities_match_a_numpy_lstm_reference(http: Client) -> None:
    source = [20, 36, 40, 10, 34, 28]
    r = http.post("/predict", json={"inputs": [source], "return_probabilities": True}).json()
    version = STORE / "reverse" / "1"
    encoder = NumpyLSTM(*layer_weights(version / "encoder.keras", "encoder_lstm"))
    decoder = NumpyLSTM(*layer_weights(version / "decoder.keras", "decoder_lstm"))
    dense_w, dense_b = layer_weights(version / "decoder.keras", "probabilities")
    h = c = np.zeros(128)
    for token in source:
        h, c = encoder.step(one_hot(token, 51), h, c)
    token = 0
    for step, chosen in enumerate(r["outputs"][0]):
        h, c = decoder.step(one_hot(token, 51), h, c)
        logits = h @ dense_w + dense_b
        expected = np.exp(logits - logits.max())
        expected /= expected.sum()
        assert_close(r["probabilities"][0][step], expected)
        assert chosen == int(np.argmax(expected))
        token = chosen


def test_memory_step_model_predict(http: Client) -> None:
    r = http.post("/v1/models/memory/predict", json={"inputs": [[3, 0, 1, 2], [4, 0, 1, 2]]})
    assert r.json()["outputs"] == [[0, 1, 2, 3], [0, 1, 2, 4]]


def test_models_and_health(http: Client) -> None:
    assert http.get("/healthz").json()["status"] == "ok"
    ready = http.get("/readyz").json()
    assert ready["status"] == "ready" and ready["detail"]["models"] == {
        "dates": ["1"],
        "dates-transformer": ["1"],
        "memory": ["1"],
        "reverse": ["1"],
    }
    listing = http.get("/v1/models").json()["models"]
    assert [(m["name"], m["kind"]) for m in listing] == [
        ("dates", "seq2seq"),
        ("dates-transformer", "seq2seq"),
        ("memory", "step"),
        ("reverse", "seq2seq"),
    ]
    reverse = http.get("/v1/models/reverse").json()
    assert reverse["state_shapes"] == [[128], [128]]
    assert reverse["input_cardinality"] == 51 and reverse["max_steps"] == 3
    assert reverse["metrics"]["exact_sequence_accuracy"] >= 0.999
    memory = http.get("/v1/models/memory/versions/1").json()
    assert memory["state_shapes"] == [[20], [20]] and memory["kind"] == "step"
    assert http.get("/v1/models/nope").status_code == 404
    assert http.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"inputs": [[20, 51]]}, "inputs[0][1]"),
        ({"inputs": [[]]}, "inputs[0]"),
        ({"inputs": []}, "inputs"),
        ({"inputs": [[1]], "max_steps": 100000}, "max_steps"),
        ({"inputs": [[1]] * 257}, "inputs"),
        ({"inputs": [[1] * 1025]}, "inputs[0]"),
        ({"inputs": [["x"]]}, "inputs[0][0]"),
        ({"inputs": [[1]], "model": "nope"}, "model"),
    ],
)
def test_bad_input_gets_4xx(http: Client, body: dict[str, object], field: str) -> None:
    r = http.post("/predict", json=body)
    assert 400 <= r.status_code < 500
    assert r.json()["error"]["field"] == field
