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


def gzipped(body: dict[str, Any]) -> bytes:
    import gzip

    return gzip.compress(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("tensor", "field"),
    [
        ({"shape": [1] * 65, "data": [1]}, "inputs[0].shape"),  # numpy's limit is 64
        ({"datatype": "FP64", "data": [[10**400]]}, "inputs[0].datatype"),
        ({"shape": [1, 2**70], "data": [1]}, "inputs[0].shape"),
        ({"shape": [-7, 2], "data": [1]}, "inputs[0].shape"),  # -7: -9999... (300 digits)
    ],
)
def test_inputs_that_answered_500_are_400_naming_the_field(
    client: TestClient, tensor: dict[str, Any], field: str
) -> None:
    body = json.dumps({"inputs": [{**tokens([[1]]), **tensor}]}).encode()
    body = body.replace(b"-7", b"-" + b"9" * 300)
    answer = client.post("/v2/models/counter/infer", content=body)
    assert refused(answer).startswith(field), answer.text


def test_binary_header_length_takes_ascii_digits_only() -> None:
    from service.dataplane.tensors import split_body
    from service.errors import InvalidInput

    assert split_body(b"{}xy", "2") == (b"{}", b"xy")
    for value in ("²", "٣", "+2", " 2", "", "2" * 19, "-0"):
        with pytest.raises(InvalidInput) as refusal:
            split_body(b"{}xy", value)
        assert refusal.value.field == "Inference-Header-Content-Length"


def test_one_decimal_reader_for_headers_and_paths(client: TestClient) -> None:
    from service.digits import decimal

    assert [decimal(v) for v in ("0", "007", b"42", "9" * 18)] == [0, 7, 42, 10**18 - 1]
    assert [decimal(v) for v in ("²", "٣", b"\xb2", "", "1" * 19, "1_0", "1e3")] == [None] * 7
    for version in ("²", "1" * 5000):
        answer = client.get(f"/v2/models/counter/versions/{version}/ready")
        assert answer.status_code == 404, answer.text


@pytest.mark.parametrize(
    ("datatype", "value", "why"),
    [
        ("FP64", 10**400, "outside FP64's range"),
        ("FP64", float("inf"), "outside FP64's range"),  # what JSON's 1e400 parses to
        ("FP32", 1e39, "outside FP32's range"),
        ("FP16", 70000, "outside FP16's range"),
        ("INT8", 128, "outside INT8's range"),
        ("UINT64", -1, "outside UINT64's range"),
        ("INT64", 2**64, "outside INT64's range"),
        ("INT32", 1.0, "not a INT32 value"),
        ("FP32", True, "not a FP32 value"),
        ("BOOL", 1, "not a BOOL value"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_numbers_outside_their_datatype_are_refused_naming_the_value(
    datatype: str, value: object, why: str
) -> None:
    from service.dataplane.tensors import read_input
    from service.errors import InvalidInput
    from service.wire.oip import RequestInput

    first = False if datatype == "BOOL" else 0
    given = RequestInput(name="x", shape=[1, 2], datatype=datatype, data=[[first, value]])
    with pytest.raises(InvalidInput) as refusal:
        read_input(given, "inputs[0]", memoryview(b""), 0)
    assert refusal.value.field == "inputs[0].data[1]" and why in refusal.value.message


def test_numbers_within_their_datatype_are_read_exactly() -> None:
    from service.dataplane.tensors import NUMERIC, read_input
    from service.wire.oip import RequestInput

    cases: list[tuple[str, list[Any]]] = [
        ("UINT64", [0, 2**64 - 1]),
        ("INT8", [-128, 127]),
        ("FP32", [3.4028234663852886e38, -1.5]),
        ("FP64", [10**300, 2]),
        ("BOOL", [True, False]),
    ]
    for datatype, values in cases:
        given = RequestInput(name="x", shape=[2], datatype=datatype, data=values)
        array, _ = read_input(given, "inputs[0]", memoryview(b""), 0)
        assert array.dtype == NUMERIC[datatype]
        assert array.tolist() == pytest.approx(values, rel=1e-7)


def test_a_tensor_is_refused_by_its_shape_before_its_data_is_read(client: TestClient) -> None:
    from service.dataplane.oip_prefix import PREFIX

    many = [1] * PREFIX  # a body past the prefix: judged from its start, parsed no further
    for tensor, needles in [
        ({"shape": [1, 2_000_000], "data": many}, ["inputs[0].shape", "SERVICE_MAX_SEQUENCE"]),
        ({"shape": [9, 1], "data": many}, ["inputs[0].shape", "SERVICE_MAX_BATCH_SIZE"]),
        ({"shape": [1, 2], "data": many}, ["more than 2 values", "holds 2"]),
    ]:
        for order in (["name", "datatype", "shape", "data"], ["data", "name", "datatype", "shape"]):
            entry = {"name": "tokens", "datatype": "INT64", **tensor}
            body = {"inputs": [{k: entry[k] for k in order}]}
            refused(client.post("/v2/models/counter/infer", json=body), *needles)
            packed = gzipped(body)
            headers = {"Content-Encoding": "gzip"}
            answer = client.post("/v2/models/counter/infer", content=packed, headers=headers)
            refused(answer, *needles)


def test_a_value_cut_by_the_prefix_is_never_judged(client: TestClient) -> None:
    from service.dataplane.oip_prefix import PREFIX

    head = b'{"inputs":[{"name":"tokens","datatype":"INT64","shape":[2,'
    # the prefix ends inside the shape: read there, it would look like [2]
    body = head + b" " * (PREFIX - len(head) + 10) + b'3],"data":[[1,2,3],[4,5,6]]}]}'
    answer = client.post("/v2/models/counter/infer", content=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["shape"][0] == 2


def test_gzip_members_are_all_read_and_nothing_else_follows(client: TestClient) -> None:
    import gzip
    import zlib

    body = json.dumps({"inputs": [tokens([[1, 2, 3]])]}).encode()
    url = "/v2/models/counter/infer"
    plain = client.post(url, content=body).json()

    def post(packed: bytes, encoding: str = "gzip") -> Any:
        return client.post(url, content=packed, headers={"Content-Encoding": encoding})

    members = gzip.compress(body[:10]) + gzip.compress(body[10:])  # as `cat a.gz b.gz`
    assert post(members).json() == plain
    assert post(gzip.compress(body), "GZIP").json() == plain
    refused(post(gzip.compress(body) + b"garbage"), "not valid gzip", "7 bytes after the end")
    refused(post(gzip.compress(body) + b"\0\0"), "2 bytes after the end")
    refused(post(zlib.compress(body) + b"x", "deflate"), "not valid deflate", "1 bytes after")
    refused(post(zlib.compress(body) + zlib.compress(body), "deflate"), "after the end")
    refused(post(gzip.compress(body)[:-3]), "ends before the end")
    refused(post(b""), "not valid gzip")
    refused(post(gzip.compress(body) + b"\x1f\x8bxx"), "not valid gzip")
    # the limit holds across members, and is enforced while inflating
    half = gzip.compress(b" " * 2_500_000)
    answer = post(half + half)
    assert answer.status_code == 413 and "SERVICE_MAX_BODY_BYTES" in answer.json()["error"]


def test_a_large_body_takes_the_worker_thread_and_answers_as_a_small_one(
    client: TestClient,
) -> None:
    from service.api.bodies.offload import SMALL_BODY

    body = {"id": "x" * SMALL_BODY, "inputs": [tokens([[1, 2, 3]])]}
    small = client.post("/v2/models/counter/infer", json={**body, "id": "x"}).json()
    large = client.post("/v2/models/counter/infer", json=body).json()
    assert large == {**small, "id": body["id"]}
    native = {"inputs": [[1, 2, 3]], "return_probabilities": True}
    padded = json.dumps(native).encode() + b" " * SMALL_BODY
    expected = client.post("/v1/models/counter/predict", json=native).json()
    assert client.post("/v1/models/counter/predict", content=padded).json() == expected
    wrong = json.dumps({"inputs": "x"}).encode()
    small_error = client.post("/v1/models/counter/predict", content=wrong)
    large_error = client.post("/v1/models/counter/predict", content=wrong + b" " * SMALL_BODY)
    assert small_error.status_code == large_error.status_code == 422
    assert small_error.json() == large_error.json()


def test_a_large_answer_is_the_same_json_as_a_small_one(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.api.bodies import pieces as json_pieces

    rows = [[1, 2, 3], [4, 5, 6]]
    request = {
        "id": "7",
        "inputs": [tokens(rows)],
        "parameters": {"max_steps": 10},
        "outputs": [{"name": "tokens"}, {"name": "probabilities"}],
    }
    whole = client.post("/v2/models/counter/infer", json=request)
    monkeypatch.setattr(json_pieces, "PIECE", 7)  # every list in pieces
    cut = client.post("/v2/models/counter/infer", json=request)
    assert cut.content == whole.content and cut.json()["outputs"][1]["shape"] == [2, 10, 8]


def test_a_sequence_ended_under_a_request_is_the_documented_400(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.dataplane.session_ops import SessionOps
    from service.errors import Conflict, shown

    def infer(model: str, **parameters: Any) -> Any:
        body = {"inputs": [tokens([[1]])], "parameters": {"sequence_id": 5, **parameters}}
        if parameters.get("sequence_start") is None and model == "counter":
            body["inputs"] = []
        return client.post(f"/v2/models/{model}/infer", json=body)

    step, generate = SessionOps.step, SessionOps.generate

    async def ended_first(self: SessionOps, session_id: str, *args: Any) -> Any:
        await self.delete(session_id, args[-1] if len(args) > 1 else None)  # sequence_end won
        return await (step if args and hasattr(args[0], "inputs") else generate)(
            self, session_id, *args
        )

    for model in ("stepper", "counter"):
        assert infer(model, sequence_start=True).status_code == 200
        monkeypatch.setattr(SessionOps, "step", ended_first)
        monkeypatch.setattr(SessionOps, "generate", ended_first)
        message = refused(infer(model), "sequence 5", "has not started or has ended")
        assert "seq-" not in message
        monkeypatch.undo()

    async def busy(self: SessionOps, session_id: str, *args: Any) -> Any:
        raise Conflict(f"session {shown(session_id)} is busy", field="session_id")

    assert infer("stepper", sequence_start=True).status_code == 200
    monkeypatch.setattr(SessionOps, "step", busy)
    answer = infer("stepper")
    assert answer.status_code == 409 and answer.json() == {"error": "sequence 5 is busy"}
