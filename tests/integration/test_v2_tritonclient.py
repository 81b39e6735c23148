"""The Open Inference Protocol, driven by the unmodified `tritonclient.http` with its
defaults (binary tensor data both ways), against a real server process."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

pytestmark = pytest.mark.integration

SOURCE = [20, 36, 40, 10, 34, 28]


@pytest.fixture
def client(server_url: str) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(urlparse(server_url).netloc, network_timeout=60.0)
    try:
        yield c
    finally:
        c.close()


def _input(name: str, data: np.ndarray) -> triton.InferInput:
    tensor = triton.InferInput(name, list(data.shape), np_to_triton_dtype(data.dtype))
    tensor.set_data_from_numpy(data)  # binary_data=True: the client's default
    return tensor


def _native(http: httpx.Client, model: str, inputs: list[object]) -> list[object]:
    answer = http.post(f"/v1/models/{model}/predict", json={"inputs": inputs})
    assert answer.status_code == 200, answer.text
    outputs: list[object] = answer.json()["outputs"]
    return outputs


def test_server_and_model_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "seq2seq-serving"
    assert {"binary_tensor_data", "sequence"} <= set(server["extensions"])
    for name in ("reverse", "memory", "dates"):
        assert client.is_model_ready(name)
        assert client.is_model_ready(name, "1")
        meta = client.get_model_metadata(name)
        assert meta["name"] == name and meta["versions"] == ["1"]
        inputs = {t["name"]: t for t in meta["inputs"]}
        outputs = {t["name"]: t for t in meta["outputs"]}
        assert inputs["tokens"] == {"name": "tokens", "datatype": "INT64", "shape": [-1, -1]}
        assert outputs["tokens"]["shape"] == [-1, -1]
        assert outputs["probabilities"]["datatype"] == "FP32"
        assert outputs["probabilities"]["shape"][:2] == [-1, -1]
    dates = client.get_model_metadata("dates", "1")
    assert {t["name"] for t in dates["inputs"]} == {"tokens", "text"}
    assert {t["name"] for t in dates["outputs"]} == {"tokens", "probabilities", "text"}
    assert not client.is_model_ready("nope")
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("nope")
    assert info.value.status() == "404"
    assert "nope" in info.value.message()


def test_stateless_infer_on_every_shipped_model(
    client: triton.InferenceServerClient, http: httpx.Client
) -> None:
    # reverse: INT64 ids in, INT64 ids out, equal to the native API's answer
    batch = np.array([SOURCE, [1, 2, 3, 4, 5, 6]], dtype=np.int64)
    result = client.infer("reverse", [_input("tokens", batch)])
    tokens = result.as_numpy("tokens")
    assert tokens is not None and tokens.dtype == np.int64
    assert tokens.tolist() == _native(http, "reverse", batch.tolist())
    assert tokens[0, :3].tolist() == [40, 36, 20]
    # INT32 works as well, on a pinned version, with JSON (non-binary) data both ways
    tensor = triton.InferInput("tokens", [1, 6], "INT32")
    tensor.set_data_from_numpy(np.array([SOURCE], dtype=np.int32), binary_data=False)
    asked = [triton.InferRequestedOutput("tokens", binary_data=False)]
    result = client.infer("reverse", [tensor], model_version="1", outputs=asked)
    assert result.get_response()["outputs"][0]["data"] == tokens[0].tolist()
    assert result.get_response()["model_version"] == "1"

    # memory (a step model): one output per input value, from a zero state
    seqs = np.array([[3, 0, 1, 2], [4, 0, 1, 2]], dtype=np.int64)
    result = client.infer("memory", [_input("tokens", seqs)])
    assert result.as_numpy("tokens").tolist() == [[0, 1, 2, 3], [0, 1, 2, 4]]

    # dates: BYTES text in, BYTES text and INT64 ids out; probabilities when asked for
    texts = np.array([b"21 Nov 2026", b"11/21/26"], dtype=np.object_)
    asked = [
        triton.InferRequestedOutput("text"),
        triton.InferRequestedOutput("tokens"),
        triton.InferRequestedOutput("probabilities"),
    ]
    result = client.infer("dates", [_input("text", texts)], outputs=asked, request_id="r-7")
    assert result.get_response()["id"] == "r-7"
    assert result.as_numpy("text").tolist() == [b"2026-11-21", b"2026-11-21"]
    native = http.post("/v1/models/dates/predict", json={"inputs": ["21 Nov 2026"]}).json()
    assert native["outputs"] == ["2026-11-21"]
    ids = result.as_numpy("tokens")
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32
    assert probabilities.shape[:2] == ids.shape
    # the chosen token is the most probable one at every step that was decoded
    assert (probabilities[0].argmax(axis=-1) == ids[0]).all()
    np.testing.assert_allclose(probabilities[0].sum(axis=-1), 1.0, rtol=1e-5)


def test_a_stateful_sequence_on_the_memory_model(client: triton.InferenceServerClient) -> None:
    def feed(values: list[int], sequence_id: int | str) -> list[int]:
        out = []
        for i, value in enumerate(values):
            result = client.infer(
                "memory",
                [_input("tokens", np.array([[value]], dtype=np.int64))],
                sequence_id=sequence_id,
                sequence_start=i == 0,
                sequence_end=i == len(values) - 1,
            )
            out.extend(result.as_numpy("tokens")[0].tolist())
        return out

    assert feed([3, 0, 1, 2], 42) == [0, 1, 2, 3]
    # the same id again, started afresh: a new sequence, nothing carried over
    assert feed([4, 0, 1, 2], 42) == [0, 1, 2, 4]
    assert feed([4, 0, 1, 2], "a-string-id") == [0, 1, 2, 4]
    # ended: a request without START is refused with the reason
    with pytest.raises(InferenceServerException) as info:
        client.infer("memory", [_input("tokens", np.array([[1]], dtype=np.int64))], sequence_id=42)
    assert info.value.status() == "400"
    assert "sequence_start" in info.value.message()


def test_interleaved_sequences_keep_their_own_state(client: triton.InferenceServerClient) -> None:
    a, b = [3, 0, 1, 2], [4, 0, 1, 2]
    outs: dict[int, list[int]] = {7: [], 8: []}
    for i in range(4):
        for sid, values in ((7, a), (8, b)):
            result = client.infer(
                "memory",
                [_input("tokens", np.array([[values[i]]], dtype=np.int64))],
                sequence_id=sid,
                sequence_start=i == 0,
                sequence_end=i == 3,
            )
            outs[sid].extend(result.as_numpy("tokens")[0].tolist())
    assert outs == {7: [0, 1, 2, 3], 8: [0, 1, 2, 4]}


def test_a_seq2seq_sequence_decodes_in_chunks(client: triton.InferenceServerClient) -> None:
    whole = client.infer("reverse", [_input("tokens", np.array([SOURCE], dtype=np.int64))])
    expected = whole.as_numpy("tokens")[0].tolist()
    first = client.infer(
        "reverse",
        [_input("tokens", np.array([SOURCE], dtype=np.int64))],
        sequence_id=9,
        sequence_start=True,
        parameters={"max_steps": 2},
    )
    rest = client.infer("reverse", [], sequence_id=9, sequence_end=True)
    chunks = first.as_numpy("tokens")[0].tolist() + rest.as_numpy("tokens")[0].tolist()
    assert chunks[: len(expected)] == expected


def test_errors_have_the_protocol_shape(
    client: triton.InferenceServerClient, http: httpx.Client
) -> None:
    bad = np.array([[999, 1]], dtype=np.int64)
    with pytest.raises(InferenceServerException) as info:
        client.infer("reverse", [_input("tokens", bad)])
    assert info.value.status() == "400"
    assert "999" in info.value.message() and "0..50" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.infer("reverse", [_input("tokens", np.array([[1.5]], dtype=np.float32))])
    assert "INT32, INT64" in info.value.message()
    for body, needle in [
        (b"{", "not valid JSON"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]}', "x"),
        (
            b'{"inputs": [{"name": "tokens", "shape": [1, 2], "datatype": "INT64", "data": [1]}]}',
            "holds 2",
        ),
    ]:
        answer = http.post("/v2/models/reverse/infer", content=body)
        assert answer.status_code == 400, answer.text
        assert set(answer.json()) == {"error"} and needle in answer.json()["error"]
    answer = http.post("/v2/models/nope/infer", json={"inputs": []})
    assert answer.status_code == 404 and isinstance(answer.json()["error"], str)
