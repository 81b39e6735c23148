"""TF Serving's REST API on the shipped models, over real HTTP, with requests shaped as
its documentation (tensorflow_serving/g3doc/api_rest.md) shows them."""

from typing import Any

import pytest
from httpx import Client, Response

pytestmark = pytest.mark.integration

REVERSE_SOURCES = [[20, 36, 40, 10, 34, 28], [1, 2, 3, 4, 5, 6]]
# as TF Serving prints a TensorShapeProto: int64 sizes as strings, -1 for any size
BATCH_OF_TEXTS = {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
BATCH_OF_SEQUENCES = {
    "dim": [{"size": "-1", "name": ""}, {"size": "-1", "name": ""}],
    "unknown_rank": False,
}


def plain_error(response: Response, status: int) -> str:
    """TF Serving's error body: {"error": "<message>"}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    message: str = body["error"]
    return message


def native_outputs(http: Client, model: str, inputs: list[Any]) -> list[Any]:
    r = http.post(f"/v1/models/{model}/predict", json={"inputs": inputs})
    assert r.status_code == 200, r.text
    outputs: list[Any] = r.json()["outputs"]
    return outputs


def test_row_format_answers_what_the_native_predict_answers(http: Client) -> None:
    r = http.post("/v1/models/reverse:predict", json={"instances": REVERSE_SOURCES})
    assert r.status_code == 200, r.text
    assert r.json() == {"predictions": [[40, 36, 20], [3, 2, 1]]}
    assert r.json()["predictions"] == native_outputs(http, "reverse", REVERSE_SOURCES)


def test_columnar_format_plain_and_named(http: Client) -> None:
    for inputs in (REVERSE_SOURCES, {"tokens": REVERSE_SOURCES}):
        r = http.post("/v1/models/reverse:predict", json={"inputs": inputs})
        assert r.status_code == 200, r.text
        assert r.json() == {"outputs": [[40, 36, 20], [3, 2, 1]]}


def test_named_instances_and_signature_name(http: Client) -> None:
    body = {
        "signature_name": "serving_default",
        "instances": [{"tokens": REVERSE_SOURCES[0]}, {"tokens": REVERSE_SOURCES[1]}],
    }
    r = http.post("/v1/models/reverse:predict", json=body)
    assert r.json() == {"predictions": [[40, 36, 20], [3, 2, 1]]}
    r = http.post("/v1/models/reverse:predict", json={**body, "signature_name": ""})
    assert r.json() == {"predictions": [[40, 36, 20], [3, 2, 1]]}


def test_versioned_path_and_max_steps(http: Client) -> None:
    r = http.post("/v1/models/reverse/versions/1:predict", json={"instances": REVERSE_SOURCES})
    assert r.json() == {"predictions": [[40, 36, 20], [3, 2, 1]]}
    body = {"inputs": REVERSE_SOURCES[:1], "max_steps": 5}
    r = http.post("/v1/models/reverse/versions/1:predict", json=body)
    outputs = r.json()["outputs"]
    assert len(outputs[0]) == 5 and outputs[0][:3] == [40, 36, 20]
    native = http.post("/v1/models/reverse/predict", json=body).json()["outputs"]
    assert outputs == native


def test_dates_text_in_text_out(http: Client) -> None:
    texts = ["21 Nov 2026", "saturday, november 21, 2026", "11/21/26", "2026.11.21"]
    r = http.post("/v1/models/dates:predict", json={"instances": texts})
    assert r.json() == {"predictions": ["2026-11-21"] * 4}
    r = http.post("/v1/models/dates:predict", json={"instances": [{"tokens": "21 Nov 2026"}]})
    assert r.json() == {"predictions": ["2026-11-21"]}
    r = http.post("/v1/models/dates:predict", json={"inputs": {"tokens": texts[:2]}})
    assert r.json() == {"outputs": ["2026-11-21", "2026-11-21"]}


def test_dates_tokens_in_tokens_out(http: Client) -> None:
    tokens = list("2/1/50")
    r = http.post("/v1/models/dates:predict", json={"instances": [tokens]})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert "".join(predictions[0]) == "1950-02-01\n"  # with the end token, as /predict
    assert predictions == native_outputs(http, "dates", [tokens])


def test_memory_step_model(http: Client) -> None:
    sequences = [[3, 0, 1, 2], [4, 0, 1, 2]]
    r = http.post("/v1/models/memory:predict", json={"instances": sequences})
    assert r.json() == {"predictions": [[0, 1, 2, 3], [0, 1, 2, 4]]}
    r = http.post("/v1/models/memory/versions/1:predict", json={"inputs": sequences[:1]})
    assert r.json() == {"outputs": [[0, 1, 2, 3]]}
    r = http.post("/v1/models/memory:predict", json={"instances": sequences, "max_steps": 2})
    assert "max_steps: not used by 'memory'" in plain_error(r, 400)


def test_model_status(http: Client) -> None:
    available = {"version": "1", "state": "AVAILABLE"}
    ok = {"error_code": "OK", "error_message": ""}
    for path in ("/v1/models/reverse", "/v1/models/reverse/versions/1"):
        r = http.get(path)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["model_version_status"] == [{**available, "status": ok}]
        assert body["name"] == "reverse" and body["kind"] == "seq2seq"  # native fields kept


def test_metadata(http: Client) -> None:
    r = http.get("/v1/models/reverse/metadata")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_spec"] == {"name": "reverse", "signature_name": "", "version": "1"}
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    ids = {"dtype": "DT_INT64", "tensor_shape": BATCH_OF_SEQUENCES}
    assert signature["inputs"] == {"tokens": {**ids, "name": "tokens"}}
    assert signature["outputs"] == {"outputs": {**ids, "name": "outputs"}}
    assert http.get("/v1/models/reverse/versions/1/metadata").json() == body

    dates = http.get("/v1/models/dates/metadata").json()["metadata"]["signature_def"]
    texts = {"dtype": "DT_STRING", "tensor_shape": BATCH_OF_TEXTS}
    assert dates["signature_def"]["serving_default"]["inputs"]["tokens"] == {
        **texts,
        "name": "tokens",
    }
    assert dates["signature_def"]["serving_default"]["outputs"]["outputs"] == {
        **texts,
        "name": "outputs",
    }


def test_unknown_model_and_version_are_404(http: Client) -> None:
    # the documentation's own example: a body no model here takes, still a 404
    r = http.post("/v1/models/half:predict", json={"instances": [1.0, 5.0]})
    assert "model 'half' not found" in plain_error(r, 404)
    r = http.post("/v1/models/reverse/versions/9:predict", json={"instances": REVERSE_SOURCES})
    assert "version '9' of model 'reverse' not found" in plain_error(r, 404)
    assert "not found" in plain_error(http.get("/v1/models/half/metadata"), 404)
    assert "not found" in plain_error(http.get("/v1/models/reverse/versions/9/metadata"), 404)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"instances": [[20, 99]]}, "instances[0][1]: token 99 is out of range"),
        ({"inputs": [[20, 1.5]]}, "inputs[0][1]: a token must be an integer"),
        ({"instances": ["20 36"]}, "instances[0]: text is accepted only where"),
        ({"instances": [{"input": [1]}]}, "the model has one input, 'tokens'"),
        ({"instances": []}, "instances: List should have at least 1 item"),
        ({"signature_name": "predict", "instances": [[1]]}, 'allowed: "serving_default"'),
        ({"instances": [[1]], "inputs": [[1]]}, "not both"),
        ({"signature_name": "serving_default"}, "missing 'instances'"),
        ({"instances": [[1]], "max_step": 3}, "max_step: not a known field; allowed: signature"),
    ],
)
def test_invalid_requests_are_400_with_a_message(
    http: Client, body: dict[str, Any], expected: str
) -> None:
    assert expected in plain_error(http.post("/v1/models/reverse:predict", json=body), 400)


def test_malformed_json_is_400(http: Client) -> None:
    # curl -d sends Content-Type: application/x-www-form-urlencoded: accepted all the same
    headers = {"content-type": "application/x-www-form-urlencoded"}
    r = http.post("/v1/models/reverse:predict", content=b'{"instances": [[20', headers=headers)
    assert "not valid JSON" in plain_error(r, 400)
    body = b'{"instances": [[20, 36, 40, 10, 34, 28]]}'
    r = http.post("/v1/models/reverse:predict", content=body, headers=headers)
    assert r.status_code == 200 and r.json() == {"predictions": [[40, 36, 20]]}


def test_routes_do_not_shadow_each_other(http: Client) -> None:
    r = http.get("/v1/models/reverse:predict")
    assert plain_error(r, 405) and r.headers["allow"] == "POST"
    r = http.get("/v1/models/reverse/versions/1:predict")
    assert plain_error(r, 405) and r.headers["allow"] == "POST"
    assert plain_error(http.post("/v1/models/reverse:classify", json={}), 404)
    assert http.get("/v1/models/reverse").json()["name"] == "reverse"
    assert http.get("/v1/models/reverse/versions/1").json()["version"] == "1"
    r = http.post("/v1/models/reverse/predict", json={"inputs": REVERSE_SOURCES})
    assert r.json()["outputs"] == [[40, 36, 20], [3, 2, 1]]
