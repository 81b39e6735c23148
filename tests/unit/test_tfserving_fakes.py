"""TF Serving's REST API through HTTP (in-process ASGI) on numpy fakes: what the shipped
models cannot show (vocabularies, refused versions, limits) and the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests import fakes

pytestmark = pytest.mark.unit


def plain_error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}, response.text
    message: str = response.json()["error"]
    return message


def signature(client: TestClient, model: str) -> dict[str, Any]:
    r = client.get(f"/v1/models/{model}/metadata")
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()["metadata"]["signature_def"]["signature_def"]
    assert set(found) == {"serving_default"}
    return found["serving_default"]


def shape(info: dict[str, Any]) -> list[str]:
    return [d["size"] for d in info["tensor_shape"]["dim"]]


@pytest.fixture
def texts() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(), registry=fakes.text_registry())) as c:
        yield c


def test_refused_versions_are_END_with_why_newest_first(client: TestClient) -> None:
    registry = client.app.state.runtime.registry  # type: ignore[attr-defined]
    refused = {"counter": [(None, "model.json: unreadable"), ("3", "encoder.keras: truncated")]}
    registry.update(registry.models(), refused)
    statuses = client.get("/v1/models/counter").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in statuses] == [
        ("3", "END"),
        ("2", "AVAILABLE"),
        ("1", "AVAILABLE"),
    ]
    assert statuses[0]["status"] == {
        "error_code": "UNKNOWN",
        "error_message": "encoder.keras: truncated",
    }
    assert statuses[1]["status"] == {"error_code": "OK", "error_message": ""}
    one = client.get("/v1/models/counter/versions/1").json()["model_version_status"]
    assert one == [statuses[2]]


def test_vocabulary_tokens_in_and_out(client: TestClient) -> None:
    body = {"instances": [["a", "b", 4], {"tokens": ["f"]}], "max_steps": 9}
    r = client.post("/v1/models/words:predict", json=body)
    native = client.post("/v1/models/words/predict", json={"inputs": [["a", "b", 4], ["f"]]})
    assert r.json()["predictions"] == [["<s>"] * 9, ["</s>"]]
    assert r.json()["predictions"][1] == native.json()["outputs"][1]
    assert "'zz' is not in the source vocabulary" in plain_error(
        client.post("/v1/models/words:predict", json={"inputs": [["a", "zz"]]}), 400
    )
    words = signature(client, "words")
    assert words["inputs"]["tokens"]["dtype"] == "DT_STRING"
    assert shape(words["inputs"]["tokens"]) == ["-1", "-1"]
    assert words["outputs"]["outputs"]["dtype"] == "DT_STRING"


def test_limits_name_the_wire_field(client: TestClient) -> None:
    five = [[1]] * 5  # the unit settings allow batches of 4
    for field in ("instances", "inputs"):
        r = client.post("/v1/models/counter:predict", json={field: five})
        assert plain_error(r, 400).startswith(f"{field}: batch of 5 sequences exceeds")
    r = client.post("/v1/models/counter:predict", json={"inputs": [[1] * 7]})
    assert plain_error(r, 400).startswith("inputs[0]: 7 tokens exceeds the limit of 6")
    r = client.post("/v1/models/counter:predict", json={"instances": [[1]], "max_steps": 11})
    assert "max_steps: 11 is out of range; allowed: 1..10" in plain_error(r, 400)


def test_text_models(texts: TestClient) -> None:
    r = texts.post("/v1/models/chars:predict", json={"instances": ["ab", ["a", "b"]]})
    native = texts.post("/v1/models/chars/predict", json={"inputs": ["ab", ["a", "b"]]})
    assert r.json()["predictions"] == native.json()["outputs"]
    assert r.json()["predictions"][0] == "zyx"  # tests/unit/test_text_fakes.py
    chars = signature(texts, "chars")
    for tensor in (chars["inputs"]["tokens"], chars["outputs"]["outputs"]):
        assert tensor["dtype"] == "DT_STRING" and shape(tensor) == ["-1"]
    r = texts.post("/v1/models/tagger:predict", json={"inputs": ["the cat sat"]})
    native = texts.post("/v1/models/tagger/predict", json={"inputs": ["the cat sat"]})
    assert r.json() == {"outputs": native.json()["outputs"]} == {"outputs": ["VERB DET NOUN"]}
    assert signature(texts, "tagger")["outputs"]["outputs"]["dtype"] == "DT_STRING"


def test_not_ready_is_503_with_the_plain_body() -> None:
    client = TestClient(create_app(Settings(), registry=fakes.registry()))  # no lifespan
    r = client.post("/v1/models/counter:predict", json={"instances": [[1]]})
    assert "still loading" in plain_error(r, 503) and r.headers["retry-after"] == "1"
    assert plain_error(client.get("/v1/models/counter/metadata"), 503)


def test_openapi_documents_the_plain_error_body() -> None:
    schema = create_app(Settings()).openapi()
    assert schema["components"]["schemas"]["PlainError"]["properties"]["error"]["type"] == (
        "string"
    )
    paths = schema["paths"]
    for path, method in [
        ("/v1/models/{name}:predict", "post"),
        ("/v1/models/{name}/versions/{version}:predict", "post"),
        ("/v1/models/{name}/metadata", "get"),
        ("/v1/models/{name}/versions/{version}/metadata", "get"),
    ]:
        responses = paths[path][method]["responses"]
        assert "422" not in responses  # invalid input is a 400 on these paths
        for status, response in responses.items():
            if status != "200":
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/PlainError", (path, status)
    body = paths["/v1/models/{name}:predict"]["post"]["requestBody"]["content"]
    fields = body["application/json"]["schema"]["properties"]
    assert set(fields) == {"signature_name", "instances", "inputs", "max_steps"}
    # the native routes keep their error body
    detail = paths["/v1/models/{name}"]["get"]["responses"]["404"]["content"]
    assert detail["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorBody"


@pytest.mark.parametrize("segment", ["%0D", "%0A", "%09", "a%0Db"])
def test_a_version_of_control_characters_still_answers_as_tf_serving(
    client: TestClient, segment: str
) -> None:
    """Building a URL drops CR, LF and tab, which made such a path look native to the
    error renderer (found by schemathesis: a 404 in the native shape)."""
    r = client.post(f"/v1/models/nope/versions/{segment}:predict", json={"instances": [[1]]})
    assert r.status_code == 404
    assert isinstance(r.json()["error"], str), r.json()
