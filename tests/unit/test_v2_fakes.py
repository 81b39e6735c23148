"""The Open Inference Protocol's wire format on fake models: binary tensor data, JSON
data, outputs asked for, and every malformed request answered 400 with the reason."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.sessions.memory import MemorySessionStore
from tests import fakes

pytestmark = pytest.mark.unit
HEADER = "Inference-Header-Content-Length"


@pytest.fixture
def text_client() -> Iterator[TestClient]:
    settings = Settings(max_batch_size=4, max_sequence_length=6, max_sessions=3)
    store = MemorySessionStore(settings.session_ttl_seconds, settings.max_sessions)
    app = create_app(settings, registry=fakes.text_registry(), store=store)
    with TestClient(app) as c:
        yield c


def tokens(rows: list[list[int]], datatype: str = "INT64", **extra: Any) -> dict[str, Any]:
    shape = [len(rows), len(rows[0])]
    return {"name": "tokens", "shape": shape, "datatype": datatype, "data": rows, **extra}


def binary_body(header: dict[str, Any], *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + b"".join(blobs), {HEADER: str(len(head))}


def split(answer: Any) -> tuple[dict[str, Any], bytes]:
    length = int(answer.headers[HEADER])
    return json.loads(answer.content[:length]), answer.content[length:]


def refused(answer: Any, *needles: str) -> str:
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert set(body) == {"error"} and isinstance(body["error"], str)
    for needle in needles:
        assert needle in body["error"], body["error"]
    message: str = body["error"]
    return message


def test_json_and_binary_inputs_give_the_same_answer(client: TestClient) -> None:
    rows = [[1, 2, 3], [4, 5, 6]]
    native = client.post("/v1/models/counter/predict", json={"inputs": rows}).json()["outputs"]
    as_json = client.post("/v2/models/counter/infer", json={"inputs": [tokens(rows)]})
    assert as_json.status_code == 200, as_json.text
    out = as_json.json()
    assert out["model_name"] == "counter" and out["model_version"] == "2"
    assert out["outputs"] == [
        {"name": "tokens", "datatype": "INT64", "shape": [2, 3], "data": sum(native, [])}
    ]
    raw = np.array(rows, dtype="<i4").tobytes()
    entry = {"name": "tokens", "shape": [2, 3], "datatype": "INT32"}
    entry["parameters"] = {"binary_data_size": len(raw)}
    body, headers = binary_body(
        {"inputs": [entry], "parameters": {"binary_data_output": True}}, raw
    )
    answer = client.post("/v2/models/counter/versions/1/infer", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    head, data = split(answer)
    [output] = head["outputs"]
    assert output["parameters"] == {"binary_data_size": 2 * 3 * 8}
    assert np.frombuffer(data, "<i8").reshape(2, 3).tolist() == native


def test_outputs_asked_for_by_name_each_binary_or_not(client: TestClient) -> None:
    request = {
        "inputs": [tokens([[1, 2]])],
        "outputs": [
            {"name": "probabilities", "parameters": {"binary_data": True}},
            {"name": "tokens"},
        ],
    }
    answer = client.post("/v2/models/counter/infer", json=request)
    head, data = split(answer)
    probs_meta, tokens_meta = head["outputs"]
    assert probs_meta["name"] == "probabilities" and probs_meta["shape"] == [1, 3, 8]
    probs = np.frombuffer(data, "<f4").reshape(1, 3, 8)
    assert probs_meta["parameters"]["binary_data_size"] == len(data)
    assert probs.argmax(-1).tolist() == [tokens_meta["data"]]


def test_seq2seq_rows_that_end_early_are_padded_with_the_end_token(client: TestClient) -> None:
    # the fake "words" model ends at token 7: a source summing to 6 ends at the first
    # step, one summing to 2 at the fifth (see CounterCompute)
    rows = [[1, 2, 3], [1, 1, 0]]
    native = client.post("/v1/models/words/predict", json={"inputs": rows, "max_steps": 6}).json()[
        "outputs"
    ]
    ids = [[fakes.VOCAB.index(t) for t in row] for row in native]
    assert [len(r) for r in ids] == [1, 5]
    answer = client.post(
        "/v2/models/words/infer",
        json={"inputs": [tokens(rows)], "parameters": {"max_steps": 6}},
    ).json()["outputs"][0]
    width = max(len(r) for r in ids)
    assert answer["shape"] == [2, width]
    expected = [r + [7] * (width - len(r)) for r in ids]
    assert answer["data"] == sum(expected, [])


def test_text_in_and_out_as_bytes_json_and_binary(text_client: TestClient) -> None:
    native = text_client.post("/v1/models/chars/predict", json={"inputs": ["ab", "c"]})
    texts = native.json()["outputs"]
    request = {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["ab", "c"]}]}
    out = text_client.post("/v2/models/chars/infer", json=request).json()["outputs"]
    assert [o["name"] for o in out] == ["tokens", "text"]
    assert out[1] == {"name": "text", "datatype": "BYTES", "shape": [2], "data": texts}
    raw = b"".join(struct.pack("<I", len(t)) + t for t in (b"ab", b"c"))
    entry = {"name": "text", "shape": [2, 1], "datatype": "BYTES"}
    entry["parameters"] = {"binary_data_size": len(raw)}
    body, headers = binary_body(
        {"inputs": [entry], "outputs": [{"name": "text", "parameters": {"binary_data": True}}]}, raw
    )
    head, data = split(text_client.post("/v2/models/chars/infer", content=body, headers=headers))
    items, at = [], 0
    while at < len(data):
        (size,) = struct.unpack_from("<I", data, at)
        items.append(data[at + 4 : at + 4 + size].decode())
        at += 4 + size
    assert items == texts and head["outputs"][0]["shape"] == [2]


@pytest.mark.parametrize(
    ("request_body", "needles"),
    [
        ({"inputs": [tokens([[1, 99]])]}, ["tokens[0][1]", "out of range", "0..7"]),
        ({"inputs": [tokens([[1, 2]], "FP32")]}, ["FP32", "INT32, INT64"]),
        ({"inputs": [tokens([[1, 2]], "COMPLEX")]}, ["COMPLEX", "BOOL", "BYTES"]),
        ({"inputs": [{**tokens([[1, 2]]), "shape": [2]}]}, ["[2]", "[batch, length]"]),
        ({"inputs": [{**tokens([[1, 2]]), "shape": [1, 3]}]}, ["2 values", "holds 3"]),
        ({"inputs": [{**tokens([[1, 2]]), "name": "x"}]}, ["'x'", "allowed: tokens"]),
        ({"inputs": [tokens([[1]]), tokens([[2]])]}, ["one input"]),
        ({"inputs": []}, ["give one input"]),
        ({"inputs": [{**tokens([[1, 2]]), "data": [1, "a"]}]}, ["'a'", "INT64"]),
        ({"inputs": [{**tokens([[1, 2]]), "data": [1, 2**63]}]}, ["INT64's range"]),
        ({"inputs": [tokens([[1, 2]])], "outputs": [{"name": "logits"}]}, ["logits", "allowed"]),
        (
            {"inputs": [tokens([[1, 2]])], "parameters": {"bogus": 1}},
            ["parameters.bogus", "allowed: sequence_id"],
        ),
        ({"inputs": [tokens([[1, 2]])], "parameters": {"sequence_end": True}}, ["sequence_id"]),
        ({"inputs": [tokens([[1, 2]])], "parameters": {"max_steps": 0}}, ["max_steps"]),
        ({"inputs": [tokens([[1] * 7])]}, ["SERVICE_MAX_SEQUENCE_LENGTH"]),
        ({"inputs": [tokens([[1]] * 5)]}, ["SERVICE_MAX_BATCH_SIZE"]),
    ],
)
def test_malformed_requests_are_400_with_the_reason(
    client: TestClient, request_body: dict[str, Any], needles: list[str]
) -> None:
    refused(client.post("/v2/models/counter/infer", json=request_body), *needles)


def test_malformed_binary_data_is_400(client: TestClient) -> None:
    entry = {"name": "tokens", "shape": [1, 2], "datatype": "INT64"}
    raw = np.array([[1, 2]], "<i8").tobytes()
    for size, blob, needles in [
        (16, raw[:10], ["runs past"]),
        (12, raw, ["12 bytes", "needs 16"]),
        (16, raw + b"xx", ["2 bytes", "no input claims"]),
    ]:
        body, headers = binary_body(
            {"inputs": [{**entry, "parameters": {"binary_data_size": size}}]}, blob
        )
        refused(client.post("/v2/models/counter/infer", content=body, headers=headers), *needles)
    refused(
        client.post("/v2/models/counter/infer", content=b"{}", headers={HEADER: "99"}),
        "Inference-Header-Content-Length",
    )
    refused(client.post("/v2/models/counter/infer", content=b"{"), "not valid JSON")


def test_sequences_on_a_step_model_and_their_errors(client: TestClient) -> None:
    def infer(value: int, **parameters: Any) -> Any:
        body = {"inputs": [tokens([[value]])], "parameters": {"sequence_id": 1, **parameters}}
        return client.post("/v2/models/stepper/infer", json=body)

    zero_state = client.post("/v1/models/stepper/predict", json={"inputs": [[1, 2, 3]]})
    expected = zero_state.json()["outputs"][0]
    got = [infer(1, sequence_start=True), infer(2), infer(3, sequence_end=True)]
    assert [a.json()["outputs"][0]["data"][0] for a in got] == expected
    refused(infer(1), "has not started", "sequence_start=true")
    batch = {"inputs": [tokens([[1], [2]])], "parameters": {"sequence_id": 1}}
    refused(client.post("/v2/models/stepper/infer", json=batch), "batch 1")
    # a failed request in a sequence leaves its state as it was
    assert infer(1, sequence_start=True).status_code == 200
    refused(infer(99), "out of range")
    assert infer(2, sequence_end=True).json()["outputs"][0]["data"] == [expected[1]]


def test_health_metadata_and_unknown_models(client: TestClient) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2").json()["name"] == "seq2seq-serving"
    meta = client.get("/v2/models/counter").json()
    assert meta["versions"] == ["1", "2"] and meta["platform"] == "keras"
    assert client.get("/v2/models/counter/versions/1").json()["versions"] == ["1"]
    assert client.get("/v2/models/counter/versions/1/ready").status_code == 200
    for path in ("/v2/models/nope", "/v2/models/counter/versions/9/ready"):
        answer = client.get(path)
        assert answer.status_code == 404 and isinstance(answer.json()["error"], str)
    assert client.get("/v2/models/counter/infer").status_code == 405


def test_compressed_requests_as_tritonclient_sends_them(client: TestClient) -> None:
    import gzip
    import zlib

    body = json.dumps({"inputs": [tokens([[1, 2, 3]])]}).encode()
    plain = client.post("/v2/models/counter/infer", content=body).json()
    for encoding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        answer = client.post(
            "/v2/models/counter/infer", content=packed, headers={"Content-Encoding": encoding}
        )
        assert answer.json() == plain
    refused(
        client.post("/v2/models/counter/infer", content=b"xx", headers={"Content-Encoding": "br"}),
        "br",
        "allowed: gzip, deflate",
    )
    refused(
        client.post(
            "/v2/models/counter/infer", content=b"xx", headers={"Content-Encoding": "gzip"}
        ),
        "not valid gzip",
    )
    bomb = gzip.compress(b" " * 5_000_000)  # a few KB that inflate past the 4 MiB limit
    answer = client.post(
        "/v2/models/counter/infer", content=bomb, headers={"Content-Encoding": "gzip"}
    )
    assert answer.status_code == 413 and "SERVICE_MAX_BODY_BYTES" in answer.json()["error"]
