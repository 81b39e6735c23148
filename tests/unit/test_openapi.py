"""The OpenAPI document on fakes: every status the middleware and the framework can
answer is on every operation it can reach, every error answer has its body, example and
headers, the limits are this app's settings, and what the server refuses that the
document once allowed is now refused (or documented) consistently."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel

from service.api.errors import answers_plain
from service.app import create_app
from service.config import Settings
from service.sessions.memory import MemorySessionStore
from service.wire.native import ErrorBody, Health
from service.wire.oip import PlainError
from tests import fakes

pytestmark = pytest.mark.unit
KEY = "ops:unit-test-key-0123456789"
BODIES: dict[str, type[BaseModel]] = {
    "#/components/schemas/ErrorBody": ErrorBody,
    "#/components/schemas/PlainError": PlainError,
    "#/components/schemas/Health": Health,
}


def document(**settings: Any) -> dict[str, Any]:
    return create_app(Settings(**settings)).openapi()


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_every_operation_documents_what_the_middleware_and_framework_answer() -> None:
    schema = document(api_keys=KEY, allowed_hosts="models.internal")
    for path, method, operation in operations(schema):
        statuses = set(operation["responses"])
        where = f"{method.upper()} {path}: {sorted(statuses)}"
        assert {"403", "500"} <= statuses, where
        assert ("400" in statuses) or path in ("/healthz", "/readyz"), where
        guarded = path not in ("/healthz", "/readyz")
        assert ("401" in statuses) == guarded, where
        assert ("security" in operation) == guarded, where
        body = "requestBody" in operation
        assert ("413" in statuses) == body, where
        invalid = "400" if answers_plain(path) else "422"
        if body or any(p["in"] in ("query", "header") for p in operation.get("parameters", [])):
            assert invalid in statuses, where
        if "{" in path:
            assert "404" in statuses, where
        assert "422" not in statuses or not answers_plain(path), where
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}


def test_without_keys_or_hosts_no_401_and_no_security() -> None:
    schema = document()
    for path, method, operation in operations(schema):
        assert "401" not in operation["responses"], (method, path)
        assert "security" not in operation
    assert "securitySchemes" not in schema["components"]


def test_every_error_answer_has_its_body_an_example_and_its_headers() -> None:
    schema = document(api_keys=KEY)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, method, operation in operations(schema):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            where = (method, path, status)
            media = response["content"]["application/json"]
            body = BODIES[media["schema"]["$ref"]]
            if body is not Health:
                assert body is (PlainError if answers_plain(path) else ErrorBody), where
            body.model_validate(media["example"])  # the example is a body as the schema says
            headers = response.get("headers", {})
            if status in ("429", "503"):
                assert headers["Retry-After"]["required"], where
            if status == "401":
                assert headers["WWW-Authenticate"]["required"], where
            assert response["description"], where


def test_every_reference_resolves_and_every_limit_is_filled_in() -> None:
    schema = document()
    names = set(schema["components"]["schemas"])
    for ref in refs(schema):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in names, ref
    assert "x-settings" not in str(schema) and "$defs" not in str(schema)


def test_limits_are_this_apps_settings() -> None:
    schema = document(max_batch_size=7, max_sequence_length=9, max_decode_steps=11)
    paths = schema["paths"]
    predict = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    inputs = predict["properties"]["inputs"]
    assert inputs["maxItems"] == 7 and inputs["minItems"] == 1
    tokens, text = inputs["items"]["oneOf"]
    assert tokens["maxItems"] == 9 and tokens["items"]["anyOf"][0]["minimum"] == 0
    assert text == {"type": "string", "minLength": 1}
    steps = predict["properties"]["max_steps"]
    assert steps["minimum"] == 1 and steps["maximum"] == 11
    assert "SERVICE_MAX_DECODE_STEPS" in steps["description"]
    tokens_input = schema["components"]["schemas"]["TokensInput"]["properties"]["shape"]
    assert [d["maximum"] for d in tokens_input["prefixItems"]] == [7, 9]
    tf = paths["/v1/models/{name}:predict"]["post"]["requestBody"]["content"]
    instances = tf["application/json"]["schema"]["properties"]["instances"]["anyOf"][0]
    assert instances["maxItems"] == 7


def test_predict_routes_that_name_the_model_document_no_model_field() -> None:
    paths = document()["paths"]
    for path in ("/v1/models/{name}/predict", "/v1/models/{name}/versions/{version}/predict"):
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert {"model", "version"}.isdisjoint(body["properties"])
        assert {"inputs", "max_steps", "strategy", "stream"} <= set(body["properties"])
        assert body["additionalProperties"] is False
    body = paths["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "version"} <= set(body["properties"])


def test_v2_documents_empty_probes_and_binary_bodies() -> None:
    paths = document()["paths"]
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}/ready"):
        assert "content" not in paths[path]["get"]["responses"]["200"], path
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert set(infer["responses"]["200"]["content"]) == {
        "application/json",
        "application/octet-stream",
    }
    generate = paths["/v1/sessions/{session_id}/generate"]["post"]
    assert generate["requestBody"]["required"] is False  # an empty body is {}


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(max_batch_size=4, max_sequence_length=6, max_decode_steps=10)
    store = MemorySessionStore(settings.session_ttl_seconds, settings.max_sessions)
    app = create_app(settings, registry=fakes.registry(), store=store)
    with TestClient(app) as c:
        yield c


def test_the_model_routes_refuse_model_and_version_even_null(client: TestClient) -> None:
    """The document lists no 'model' or 'version' there, so none is accepted."""
    for field in ("model", "version"):
        r = client.post("/v1/models/counter/predict", json={"inputs": [[1]], field: None})
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    assert client.post("/predict", json={"inputs": [[1]], "model": "counter"}).status_code == 200


def v2(client: TestClient, model: str, tensor: dict[str, Any], **parameters: Any) -> Any:
    body = {"inputs": [tensor], "parameters": parameters}
    return client.post(f"/v2/models/{model}/infer", json=body)


def test_v2_text_is_batch_or_batch_by_one() -> None:
    settings = Settings()
    app = create_app(settings, registry=fakes.text_registry())
    with TestClient(app) as client:
        text = {"name": "text", "datatype": "BYTES", "data": ["ab", "c"]}
        for shape in ([2], [2, 1]):
            assert v2(client, "chars", {**text, "shape": shape}).status_code == 200, shape
        for shape in ([1, 2], [2, 1, 1], []):
            texts = ["ab", "c"] if shape != [] else ["ab"]
            r = v2(client, "chars", {**text, "shape": shape, "data": texts})
            assert r.status_code == 400 and "[batch] or [batch, 1]" in r.json()["error"], r.text


def test_v2_sequences_check_max_steps_as_predict_does(client: TestClient) -> None:
    tokens = {"name": "tokens", "datatype": "INT64", "shape": [1, 1], "data": [1]}
    r = v2(client, "stepper", tokens, sequence_id=7, sequence_start=True, max_steps=2)
    assert r.status_code == 400 and "max_steps: not used by 'stepper'" in r.json()["error"]
    r = v2(client, "counter", tokens, sequence_id=7, sequence_start=True, max_steps=0)
    assert r.status_code == 400 and "SERVICE_MAX_DECODE_STEPS" in r.json()["error"]
    r = v2(client, "counter", tokens, sequence_id=7, sequence_start=True, max_steps=2)
    assert r.status_code == 200, r.text
    r = v2(client, "counter", tokens, sequence_id=7, max_steps=11)  # a step: checked anyway
    assert r.status_code == 400 and "1..10" in r.json()["error"]


def body_schema(schema: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    content = schema["paths"][path][method]["requestBody"]["content"]
    found: dict[str, Any] = content["application/json"]["schema"]
    return found


def test_the_documents_limits_are_the_servers_at_the_boundary(client: TestClient) -> None:
    """At the documented maximum accepted, one beyond refused: the document's limits are
    the ones the server enforces (schemathesis rarely builds a batch whose every token is
    valid for a model, so this is checked here)."""
    schema = client.get("/openapi.json").json()
    predict = body_schema(schema, "/v1/models/{name}/predict")["properties"]
    batch = predict["inputs"]["maxItems"]
    length = predict["inputs"]["items"]["oneOf"][0]["maxItems"]
    steps = predict["max_steps"]["maximum"]

    def native(rows: int, tokens: int, max_steps: int) -> int:
        body = {"inputs": [[1] * tokens] * rows, "max_steps": max_steps}
        return client.post("/v1/models/counter/predict", json=body).status_code

    assert native(batch, length, steps) == 200
    assert native(batch + 1, 1, 1) == native(1, length + 1, 1) == native(1, 1, steps + 1) == 422
    tf = body_schema(schema, "/v1/models/{name}:predict")["properties"]["instances"]["anyOf"][0]
    assert tf["maxItems"] == batch and tf["items"]["anyOf"][0]["maxItems"] == length

    def serving(rows: int, tokens: int) -> int:
        body = {"instances": [[1] * tokens] * rows}
        return client.post("/v1/models/counter:predict", json=body).status_code

    assert serving(batch, length) == 200
    assert serving(batch + 1, 1) == serving(1, length + 1) == 400
    dims = schema["components"]["schemas"]["TokensInput"]["properties"]["shape"]["prefixItems"]
    assert [d["maximum"] for d in dims] == [batch, length]

    def infer(rows: int, tokens: int) -> int:
        tensor = {"name": "tokens", "datatype": "INT64", "shape": [rows, tokens]}
        body = {"inputs": [{**tensor, "data": [1] * (rows * tokens)}]}
        return client.post("/v2/models/counter/infer", json=body).status_code

    assert infer(batch, length) == 200
    assert infer(batch + 1, 1) == infer(1, length + 1) == 400
