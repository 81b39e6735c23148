"""Text in, text out, two vocabularies, source padding and attention memory in sessions,
through HTTP on numpy fakes (tests/fakes.py: output = (input + 1 + sum(source)) % 5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.sessions.memory import MemorySessionStore
from tests import fakes
from tests.unit.test_api_fakes import error

pytestmark = pytest.mark.unit


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(max_batch_size=8, max_sequence_length=10, max_decode_steps=10)
    store = MemorySessionStore(settings.session_ttl_seconds, settings.max_sessions)
    with TestClient(create_app(settings, registry=fakes.text_registry(), store=store)) as c:
        yield c


def decode(source: str, steps: int = 6) -> list[int]:
    """The fake's greedy decode, written out: start "\\t" = 0, end "\\n" = 1."""
    ids = [fakes.SOURCE_CHARS.index(ch) for ch in source.ljust(4)]
    offset, token, out = sum(ids) % 5, 0, []
    for _ in range(steps):
        token = (token + 1 + offset) % 5
        out.append(token)
        if token == 1:
            break
    return out


def text(ids: list[int]) -> str:
    return "".join(fakes.TARGET_CHARS[i] for i in ids if i not in (0, 1))


def test_text_in_text_out_and_tokens_in_tokens_out(client: TestClient) -> None:
    r = client.post("/predict", json={"inputs": ["ab", ["a", "b"], [1, 2, 0, 0], "ace"]})
    assert r.status_code == 200, r.text
    outputs = r.json()["outputs"]
    assert decode("ab") == [4, 3, 2, 1]  # ends on "\n": the text drops it
    assert outputs[0] == text(decode("ab")) == "zyx"
    tokens = [fakes.TARGET_CHARS[i] for i in decode("ab")]
    assert outputs[1] == tokens and outputs[2] == tokens  # padded to source.length either way
    assert outputs[3] == text(decode("ace"))


def test_text_errors_name_the_position_and_the_limit(client: TestClient) -> None:
    msg = error(client.post("/predict", json={"inputs": ["ab", "abz"]}), 422, "inputs[1][2]")
    assert "character 'z' at position 2 is not in the source vocabulary" in msg
    assert "' ', 'a', 'b'" in msg
    msg = error(client.post("/predict", json={"inputs": ["abcde"]}), 422, "inputs[0]")
    assert "5 tokens" in msg and "at most 4" in msg and "source.length" in msg
    msg = error(client.post("/predict", json={"inputs": [""]}), 422, "inputs[0]")
    assert "no tokens" in msg
    msg = error(client.post("/predict", json={"inputs": [5]}), 422, "inputs[0]")
    assert "valid array" in msg


def test_unknown_characters_map_to_unk_token(client: TestClient) -> None:
    r = client.post("/v1/models/chars_unk/predict", json={"inputs": ["a?"]})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"] == [text(decode("ae"))]  # "?" -> unk_token "e"


def test_model_info_shows_both_sides(client: TestClient) -> None:
    body = client.get("/v1/models/chars").json()
    assert body["source"]["vocabulary"] == fakes.SOURCE_CHARS
    assert body["source"]["length"] == 4 and body["source"]["pad_token"] == " "
    assert body["target"]["vocabulary"] == fakes.TARGET_CHARS
    assert (body["start_token"], body["end_token"], body["output_cardinality"]) == (0, 1, 5)
    assert body["vocabulary"] is None  # the sides differ
    assert body["memory_shape"] is None
    assert client.get("/v1/models/attend").json()["memory_shape"] == [4, 2]


def new_session(client: TestClient, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


@pytest.mark.parametrize("model", ["chars", "attend"])
def test_sessions_take_text_and_answer_text(client: TestClient, model: str) -> None:
    sid = new_session(client, model=model, source="ab")["session_id"]
    r = client.post(f"/v1/sessions/{sid}/generate", json={"max_steps": 2})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"] == ["z", "y"] and r.json()["text"] == "zy"
    # step takes target-side text (teacher forcing the decoder)
    r = client.post(f"/v1/sessions/{sid}/step", json={"inputs": "x"})
    assert r.status_code == 200, r.text
    assert r.json()["steps"] == 3 and r.json()["text"] == "\n"[:0] + text([(2 + 4) % 5])
    msg = error(client.post(f"/v1/sessions/{sid}/step", json={"inputs": "xa"}), 422)
    assert "'a' at position 1 is not in the target vocabulary" in msg


def test_attention_session_keeps_its_memory(client: TestClient) -> None:
    sid = new_session(client, model="attend", source="ab")["session_id"]
    shown = client.get(f"/v1/sessions/{sid}", params={"include_state": "true"}).json()
    assert shown["memory"] == [[1.0, 1.0], [2.0, 2.0], [0.0, 0.0], [0.0, 0.0]]  # exact: ids
    state = [[1.0, 1.0, 1.0], [[0.0, 0.0], [0.0, 0.0]]]
    r = client.put(f"/v1/sessions/{sid}/state", json={"state": state})
    assert r.status_code == 200, r.text
    assert r.json()["memory"] == shown["memory"]  # PUT state sets only the states
    r = client.post(f"/v1/sessions/{sid}/generate", json={"max_steps": 1})
    assert r.json()["outputs"] == [fakes.TARGET_CHARS[(0 + 1 + 1) % 5]]
    assert client.post(f"/v1/sessions/{sid}/reset").status_code == 200
    after = client.get(f"/v1/sessions/{sid}", params={"include_state": "true"}).json()
    assert after["memory"] == shown["memory"] and after["steps"] == 0
    msg = error(
        client.post("/v1/sessions", json={"model": "attend", "state": state}), 422, "source"
    )
    assert "attends over the encoded source" in msg


def test_tagger_words_in_tags_out(client: TestClient) -> None:
    sid = new_session(client, model="tagger")["session_id"]
    r = client.post(f"/v1/sessions/{sid}/step", json={"inputs": "the cat  flew"})
    assert r.status_code == 200, r.text
    # zero state: offset 0, so each tag id = (word id + 1) % 3; "flew" -> [UNK] = 0
    assert r.json()["outputs"] == ["VERB", "DET", "NOUN"] and r.json()["text"] == "VERB DET NOUN"
    msg = error(client.post(f"/v1/sessions/{sid}/generate", json={}), 422)
    assert "cannot feed them back" in msg
    r = client.post("/v1/models/tagger/predict", json={"inputs": ["sat", ["the", 2]]})
    assert r.json()["outputs"] == ["NOUN", ["VERB", "DET"]]
