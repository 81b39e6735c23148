"""Every endpoint through HTTP (in-process ASGI) on numpy fakes."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.wire.native import ErrorBody
from tests import fakes

pytestmark = pytest.mark.unit


def error(response: Any, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.text
    ErrorBody.model_validate(response.json())  # the shape the OpenAPI schema documents
    body = response.json()["error"]
    if field is not None:
        assert body["field"] == field, body
    message: str = body["message"]
    return message


def new_session(client: TestClient, **body: Any) -> str:
    r = client.post("/v1/sessions", json={"model": "stepper", **body})
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


def test_readyz_is_503_until_models_are_loaded() -> None:
    app = create_app(Settings(), registry=fakes.registry())
    client = TestClient(app)  # lifespan not entered: nothing loaded yet
    r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert client.get("/healthz").status_code == 200
    assert client.post("/predict", json={"inputs": [[1]]}).status_code == 503
    with client:
        assert client.get("/readyz").status_code == 200


def test_predict_routes_and_versions(client: TestClient) -> None:
    body = {"inputs": [[4, 4], [1]]}
    r = client.post("/v1/models/counter/predict", json=body)
    assert r.json() == {"model": "counter", "version": "2", "outputs": [[1, 2, 3], [2, 4, 6]]}
    r = client.post("/v1/models/counter/versions/1/predict", json=body)
    assert r.json()["version"] == "1"
    r = client.post("/predict", json={**body, "model": "counter", "version": 1, "max_steps": 1})
    assert r.json()["outputs"] == [[1], [2]]
    r = client.post(
        "/predict", json={**body, "return_probabilities": True, "max_steps": 2, "model": "counter"}
    )
    probs = r.json()["probabilities"]
    assert len(probs) == 2 and len(probs[0]) == 2 and len(probs[0][0]) == 8


def test_vocabulary_tokens_in_and_out(client: TestClient) -> None:
    r = client.post("/v1/models/words/predict", json={"inputs": [["a", "b", 4]], "max_steps": 9})
    # sum 1+2+4 = 7 -> offset 7: 0 -> 0 ... feeds "<s>"; end token 7 never reached in 9 steps
    assert r.status_code == 200
    assert r.json()["outputs"] == [["<s>"] * 9]
    r = client.post("/v1/models/words/predict", json={"inputs": [["f"]], "max_steps": 9})
    assert r.json()["outputs"] == [["</s>"]]  # 6 -> offset 6: 0+1+6 = 7 = end token
    msg = error(
        client.post("/v1/models/words/predict", json={"inputs": [["a", "zz"]]}), 422, "inputs[0][1]"
    )
    assert "'zz' is not in the source vocabulary" in msg and "'<s>', 'a'" in msg


def test_step_model_predict_runs_from_zero_state(client: TestClient) -> None:
    r = client.post("/v1/models/stepper/predict", json={"inputs": [[1, 2], [5]]})
    assert r.json()["outputs"] == [[2, 3], [6]]
    msg = error(
        client.post("/v1/models/stepper/predict", json={"inputs": [[1]], "max_steps": 2}),
        422,
        "max_steps",
    )
    assert "omit it" in msg


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"inputs": []}, "inputs", "at least 1"),
        ({"inputs": [[]]}, "inputs[0]", "at least 1"),
        ({"inputs": [[1, 99]]}, "inputs[0][1]", "allowed: integers 0..7"),
        ({"inputs": [[-1]]}, "inputs[0][0]", "allowed: integers 0..7"),
        ({"inputs": [["a"]]}, "inputs[0][0]", "has no vocabulary"),
        ({"inputs": [[1, True]]}, "inputs[0][1]", "integer id or a vocabulary string"),
        ({"inputs": [[1.5]]}, "inputs[0][0]", "integer id"),
        ({"inputs": [[1]] * 5}, "inputs", "limit of 4"),
        ({"inputs": [[1] * 7]}, "inputs[0]", "limit of 6"),
        ({"inputs": [[1]], "max_steps": 0}, "max_steps", "allowed: 1..10"),
        ({"inputs": [[1]], "max_steps": 11}, "max_steps", "allowed: 1..10"),
        ({"inputs": [[1]], "max_steps": "3"}, "max_steps", "integer"),
        ({"inputs": [[1]], "return_probabilities": "yes"}, "return_probabilities", "boolean"),
        (
            {"inputs": [[1]], "max_step": 3},
            "max_step",
            "not a known field; allowed: model, version, inputs, max_steps",
        ),
        ({"inputs": "12"}, "inputs", "array"),
    ],
)
def test_bad_predict_input_is_a_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    msg = error(client.post("/v1/models/counter/predict", json=body), 422, field)
    assert words in msg


def test_not_found_and_malformed_bodies(client: TestClient) -> None:
    msg = error(client.post("/v1/models/nope/predict", json={"inputs": [[1]]}), 404, "model")
    assert "counter" in msg and "stepper" in msg
    msg = error(
        client.post("/v1/models/counter/versions/9/predict", json={"inputs": [[1]]}), 404, "version"
    )
    assert "available versions: 1, 2" in msg
    error(client.post("/v1/models/counter/versions/x/predict", json={"inputs": [[1]]}), 404)
    error(client.post("/predict", json={"inputs": [[1]], "model": "nope"}), 404, "model")
    error(
        client.post("/v1/models/counter/predict", json={"inputs": [[1]], "model": "x"}),
        422,
        "model",
    )
    json_type = {"content-type": "application/json"}
    error(
        client.post("/v1/models/counter/predict", content=b'{"inputs": [[1]', headers=json_type),
        422,
        "body",
    )
    msg = error(
        client.post("/v1/models/counter/predict", content=b"[1, 2]", headers=json_type), 422, "body"
    )
    assert "JSON object" in msg
    # the body is JSON whatever the content type says (curl -d sends form encoding)
    r = client.post(
        "/v1/models/counter/predict",
        content=b'{"inputs": [[1]]}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200 and r.json()["outputs"] == [[2, 4, 6]]
    msg = error(client.post("/v1/models/counter/predict", content=b""), 422, "body")
    assert "not valid JSON" in msg
    error(client.get("/v1/nothing"), 404)
    error(client.delete("/v1/models/counter"), 405)


@pytest.mark.parametrize("version", ["²", "1" * 5000, "١", " 1", "-1", "1.0", "0x1"])
def test_versions_that_are_not_version_numbers_are_404(client: TestClient, version: str) -> None:
    """'²'.isdigit() is true but int() refuses it, and int() refuses 5,000 digits:
    both used to answer 500."""
    body = {"inputs": [[1]]}
    answers = [
        client.post(f"/v1/models/counter/versions/{version}/predict", json=body),
        client.get(f"/v1/models/counter/versions/{version}"),
        client.post("/predict", json={**body, "model": "counter", "version": version}),
        client.post("/v1/sessions", json={"model": "counter", "version": version}),
    ]
    for r in answers:
        msg = error(r, 404, "version")
        assert "available versions: 1, 2" in msg and len(msg) < 200, msg


def test_huge_client_values_are_clipped_in_messages(client: TestClient) -> None:
    big = "9" * 4000  # below Python's 4,300-digit str() limit, far above any range
    content = '{"inputs": [[1, ' + big + "]]}"
    msg = error(client.post("/v1/models/counter/predict", content=content), 422, "inputs[0][1]")
    assert "integer of about 4000 digits" in msg and len(msg) < 200
    content = '{"inputs": [[1]], "max_steps": ' + big + "}"
    msg = error(client.post("/v1/models/counter/predict", content=content), 422, "max_steps")
    assert "allowed: 1..10" in msg and len(msg) < 200
    msg = error(client.get("/v1/sessions/" + "x" * 3000), 404, "session_id")
    assert len(msg) < 200


def test_predict_without_model_needs_a_default(client: TestClient) -> None:
    # fakes hold two seq2seq models, so there is no implicit default
    msg = error(client.post("/predict", json={"inputs": [[1]]}), 422, "model")
    assert "counter" in msg


def test_models_endpoints(client: TestClient) -> None:
    listing = client.get("/v1/models").json()["models"]
    assert {m["name"]: m["versions"] for m in listing} == {
        "counter": ["1", "2"],
        "stepper": ["1"],
        "words": ["1"],
    }
    detail = client.get("/v1/models/words").json()
    assert detail["vocabulary_size"] == 8 and detail["state_shapes"] == [[3], [2, 2]]
    assert detail["end_token"] == 7 and detail["default_version"] == "1"
    assert client.get("/v1/models/counter/versions/1").json()["version"] == "1"
    error(client.get("/v1/models/nope"), 404)


def test_session_lifecycle(client: TestClient) -> None:
    sid = new_session(client)
    info = client.get(f"/v1/sessions/{sid}").json()
    assert info["steps"] == 0 and "state" not in info and info["model"] == "stepper"
    r = client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1, 2]})
    assert r.json() == {"session_id": sid, "outputs": [2, 3], "steps": 2}
    r = client.post(f"/v1/sessions/{sid}/generate", json={"max_steps": 2})
    assert r.json()["outputs"] == [4, 5] and r.json()["steps"] == 4
    state = client.get(f"/v1/sessions/{sid}", params={"include_state": True}).json()["state"]
    assert state[1] == [[4.0, 4.0], [4.0, 4.0]]
    r = client.post(f"/v1/sessions/{sid}/reset")
    assert r.json()["steps"] == 0
    state = client.get(f"/v1/sessions/{sid}?include_state=true").json()["state"]
    assert state == [[0.0] * 3, [[0.0, 0.0], [0.0, 0.0]]]
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    error(client.get(f"/v1/sessions/{sid}"), 404, "session_id")
    error(client.delete(f"/v1/sessions/{sid}"), 404)


def test_put_state_changes_outputs_and_zeros_restore_them(client: TestClient) -> None:
    sid = new_session(client)
    first = client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1]}).json()["outputs"]
    r = client.put(f"/v1/sessions/{sid}/state", json={"state": [[2, 0, 0], [[0, 0], [0, 0]]]})
    assert r.status_code == 200 and r.json()["state"][0] == [2.0, 0.0, 0.0]
    assert client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1]}).json()["outputs"] == [4]
    client.put(f"/v1/sessions/{sid}/state", json={"state": [[0, 0, 0], [[0, 0], [0, 0]]]})
    assert client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1]}).json()["outputs"] == first


def test_seq2seq_session_from_source_matches_predict(client: TestClient) -> None:
    r = client.post("/v1/sessions", json={"model": "counter", "version": "1", "source": [1, 2]})
    assert r.status_code == 201 and r.json()["version"] == "1"
    sid = r.json()["session_id"]
    gen = client.post(f"/v1/sessions/{sid}/generate", json={}).json()["outputs"]
    pred = client.post("/v1/models/counter/versions/1/predict", json={"inputs": [[1, 2]]})
    assert gen == pred.json()["outputs"][0]
    more = client.post(f"/v1/sessions/{sid}/generate", json={"max_steps": 1}).json()
    assert more["steps"] == 4
    full = client.post(
        "/v1/models/counter/versions/1/predict", json={"inputs": [[1, 2]], "max_steps": 4}
    ).json()["outputs"][0]
    assert gen + more["outputs"] == full


def test_generate_on_fresh_step_session_is_a_conflict(client: TestClient) -> None:
    sid = new_session(client)
    msg = error(client.post(f"/v1/sessions/{sid}/generate", json={}), 409, "session_id")
    assert "step at least one input" in msg


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"state": [[0, 0, 0]]}, "state", "expected 2 state tensors"),
        ({"state": [[0, 0], [[0, 0], [0, 0]]]}, "state[0]", "list of 3"),
        ({"state": [[0, 0, 0], [[0, 0], [0]]]}, "state[1][1]", "list of 2"),
        ({"state": [[0, "1", 0], [[0, 0], [0, 0]]]}, "state[0][1]", "not a number"),
        ({"state": [[0, True, 0], [[0, 0], [0, 0]]]}, "state[0][1]", "not a number"),
        ({"state": [[0, 1e39, 0], [[0, 0], [0, 0]]]}, "state[0][1]", "finite"),
        ({"state": [[0, 0, 0], [[0, -(10**39)], [0, 0]]]}, "state[1][0][1]", "out of range"),
        ({"state": []}, "state", "at least 1"),
        ({}, "state", "required"),
    ],
)
def test_bad_state_is_refused_and_session_unchanged(
    client: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    sid = new_session(client)
    client.post(f"/v1/sessions/{sid}/step", json={"inputs": [3]})
    before = client.get(f"/v1/sessions/{sid}?include_state=true").json()
    msg = error(client.put(f"/v1/sessions/{sid}/state", json=body), 422, field)
    assert words in msg
    after = client.get(f"/v1/sessions/{sid}?include_state=true").json()
    assert after["state"] == before["state"] and after["steps"] == before["steps"] == 1


def test_nan_infinity_and_huge_integer_states_are_refused(client: TestClient) -> None:
    sid = new_session(client)
    # 1 followed by 400 zeros is a valid JSON number beyond float range: it used to
    # raise OverflowError (500) on its way to numpy
    for literal in ("NaN", "Infinity", "-Infinity", "1" + "0" * 400, "-1" + "0" * 4000):
        body = '{"state": [[0, ' + literal + ", 0], [[0, 0], [0, 0]]]}"
        for method, path in (("PUT", f"/v1/sessions/{sid}/state"), ("POST", "/v1/sessions")):
            content = body if method == "PUT" else body[:-1] + ', "model": "stepper"}'
            r = client.request(method, path, content=content.encode())
            msg = error(r, 422, "state[0][1]")
            assert "finite float32" in msg and len(msg) < 200, msg


def test_bad_step_input_leaves_session_unchanged(client: TestClient) -> None:
    sid = new_session(client)
    client.post(f"/v1/sessions/{sid}/step", json={"inputs": [3]})
    before = client.get(f"/v1/sessions/{sid}?include_state=true").json()
    error(client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1, 8]}), 422, "inputs[1]")
    error(client.post(f"/v1/sessions/{sid}/step", json={"inputs": []}), 422, "inputs")
    error(client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1] * 7}), 422, "inputs")
    error(client.post(f"/v1/sessions/{sid}/generate", json={"max_steps": 11}), 422, "max_steps")
    after = client.get(f"/v1/sessions/{sid}?include_state=true").json()
    assert after["state"] == before["state"] and after["steps"] == 1


def test_bad_session_creation(client: TestClient) -> None:
    error(client.post("/v1/sessions", json={"model": "nope"}), 404, "model")
    error(client.post("/v1/sessions", json={"model": "counter", "version": 5}), 404, "version")
    error(client.post("/v1/sessions", json={}), 422, "model")
    error(client.post("/v1/sessions", json={"model": "stepper", "source": [1]}), 422, "source")
    error(client.post("/v1/sessions", json={"model": "counter", "source": [9]}), 422, "source[0]")
    error(
        client.post(
            "/v1/sessions",
            json={"model": "counter", "source": [1], "state": [[0, 0, 0], [[0, 0], [0, 0]]]},
        ),
        422,
    )
    r = client.post(
        "/v1/sessions", json={"model": "counter", "state": [[1, 1, 1], [[0, 0], [0, 0]]]}
    )
    assert r.status_code == 201


def test_session_cap_answers_429_with_retry_after(client: TestClient) -> None:
    ids = [new_session(client) for _ in range(3)]
    r = client.post("/v1/sessions", json={"model": "stepper"})
    msg = error(r, 429)
    assert "capacity" in msg and int(r.headers["retry-after"]) > 0
    client.delete(f"/v1/sessions/{ids[0]}")
    new_session(client)


def test_generate_takes_an_empty_body(client: TestClient) -> None:
    r = client.post("/v1/sessions", json={"model": "counter", "source": [4, 4]})
    sid = r.json()["session_id"]
    r = client.post(f"/v1/sessions/{sid}/generate")
    assert r.status_code == 200 and r.json()["outputs"] == [1, 2, 3]


def test_openapi_documents_request_bodies(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    body = paths["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]
    assert "inputs" in body["application/json"]["schema"]["properties"]
    step = paths["/v1/sessions/{session_id}/step"]["post"]["requestBody"]["content"]
    assert "inputs" in step["application/json"]["schema"]["properties"]


def test_openapi_documents_error_statuses_with_the_error_body(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    expected = {
        ("/v1/models/{name}/predict", "post"): {"404", "413", "422", "503"},
        ("/v1/sessions", "post"): {"404", "413", "422", "429", "503"},
        ("/v1/sessions/{session_id}/step", "post"): {"404", "409", "410", "413", "422", "503"},
        ("/v1/sessions/{session_id}", "get"): {"404", "410", "422", "503"},
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert statuses <= set(responses), (path, sorted(responses))
        for status in statuses:
            assert responses[status]["content"]["application/json"]["schema"] == ref
    # error() checks every error answer in the unit tests against ErrorBody


def test_405_lists_every_method_the_path_has(client: TestClient) -> None:
    for method, path, allowed in [
        ("OPTIONS", "/v1/sessions/abc", "DELETE, GET"),
        ("PATCH", "/v1/sessions", "POST"),
        ("PUT", "/v2/models/counter/infer", "POST"),
    ]:
        answer = client.request(method, path)
        assert answer.status_code == 405
        assert answer.headers["allow"] == allowed
        message = answer.json()["error"]
        text = message if isinstance(message, str) else message["message"]
        assert f"allowed: {allowed}" in text
