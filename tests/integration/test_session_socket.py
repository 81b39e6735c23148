"""Session steps over a WebSocket (GET /v1/sessions/{id}/ws) on the shipped models, with the
real `websockets` client against the shared servers: the same answers as HTTP steps, in
order with their ids, errors that keep the connection open, idempotency, the Origin
check, API keys and ownership, concurrent connections batched together."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from service.client import AsyncClient, Client, InvalidInput
from tests.harness import Server
from tests.integration.conftest import API_KEYS

pytestmark = pytest.mark.integration

MEMORY_INPUTS = [[4], [0, 1], [2], [3, 0], [1, 2]]


def ws_url(base: str, session_id: str) -> str:
    return base.replace("http://", "ws://", 1) + f"/v1/sessions/{session_id}/ws"


def create(http: httpx.Client, **body: Any) -> str:
    answer = http.post("/v1/sessions", json=body)
    assert answer.status_code == 201, answer.text
    session_id: str = answer.json()["session_id"]
    return session_id


def ask(ws: ClientConnection, message: dict[str, Any] | str) -> dict[str, Any]:
    ws.send(message if isinstance(message, str) else json.dumps(message))
    answer: dict[str, Any] = json.loads(ws.recv(timeout=30))
    return answer


def state(http: httpx.Client, session_id: str) -> Any:
    return http.get(f"/v1/sessions/{session_id}", params={"include_state": "true"}).json()


@pytest.fixture
def opened(server_url: str, http: httpx.Client) -> Iterator[tuple[ClientConnection, str]]:
    session_id = create(http, model="memory")
    with connect(ws_url(server_url, session_id)) as ws:
        yield ws, session_id


def test_steps_over_a_websocket_equal_http_steps(server_url: str, http: httpx.Client) -> None:
    over_http, over_ws = create(http, model="memory"), create(http, model="memory")
    expected = [
        http.post(f"/v1/sessions/{over_http}/step", json={"inputs": x}).json()
        for x in MEMORY_INPUTS
    ]
    with connect(ws_url(server_url, over_ws)) as ws:
        answers = [ask(ws, {"inputs": x}) for x in MEMORY_INPUTS]
    for got, want in zip(answers, expected, strict=True):
        assert got == {**want, "session_id": over_ws}
    mine, theirs = state(http, over_ws), state(http, over_http)
    assert mine["state"] == theirs["state"] and mine["steps"] == theirs["steps"] == 8


def test_generate_over_a_websocket_equals_http(server_url: str, http: httpx.Client) -> None:
    source = [20, 36, 40, 10, 34, 28]
    over_http = create(http, model="reverse", source=source)
    over_ws = create(http, model="reverse", source=source)
    want = http.post(f"/v1/sessions/{over_http}/generate", json={"max_steps": 3}).json()
    with connect(ws_url(server_url, over_ws)) as ws:
        got = ask(ws, {"op": "generate", "max_steps": 3, "id": "g"})
    assert want["outputs"] == [40, 36, 20]
    assert got == {"id": "g", **want, "session_id": over_ws}


def test_many_pipelined_messages_are_answered_in_order_with_their_ids(
    opened: tuple[ClientConnection, str],
) -> None:
    ws, session_id = opened
    ids: list[Any] = [n if n % 2 else f"m-{n}" for n in range(60)]
    for n, message_id in enumerate(ids):  # all sent before any answer is read
        ws.send(json.dumps({"id": message_id, "inputs": [n % 5]}))
    answers = [json.loads(ws.recv(timeout=30)) for _ in ids]
    assert [a["id"] for a in answers] == ids
    assert [a["steps"] for a in answers] == list(range(1, 61))
    assert all(a["session_id"] == session_id and len(a["outputs"]) == 1 for a in answers)


def test_an_error_answers_its_message_and_the_connection_stays_open(
    opened: tuple[ClientConnection, str],
) -> None:
    ws, session_id = opened
    refused = [
        ("{not json", None, "invalid_input", "message"),
        ("[1, 2]", None, "invalid_input", "message"),
        ({"id": 1, "inputs": [1], "input": [1]}, 1, "invalid_input", "input"),
        ({"id": 2, "op": "predict", "inputs": [1]}, 2, "invalid_input", "op"),
        ({"id": 3, "inputs": [99]}, 3, "invalid_input", "inputs[0]"),
        ({"id": 4, "op": "generate", "stream": True}, 4, "invalid_input", "stream"),
        ({"id": [5], "inputs": [1]}, None, "invalid_input", "id"),
        (
            {"id": 6, "inputs": [1], "idempotency_key": "\u00e9"},
            6,
            "invalid_input",
            "idempotency_key",
        ),
    ]
    for message, message_id, code, field in refused:
        answer = ask(ws, message)
        assert answer.get("id") == message_id, answer
        assert answer["status"] == 422 and answer["error"]["code"] == code, answer
        assert answer["error"]["field"] == field, answer
    assert (
        "allowed: op, id, idempotency_key, inputs"
        in ask(ws, {"inputs": [1], "x": 1})["error"]["message"]
    )
    ws.send(b'{"inputs": [1]}')  # binary: refused, named
    assert json.loads(ws.recv(timeout=30))["error"]["field"] == "message"
    answer = ask(ws, {"inputs": [3], "id": 7})
    assert answer == {"id": 7, "session_id": session_id, "outputs": [0], "steps": 1}


def test_an_idempotency_key_replays_the_first_answer_over_the_socket_and_http(
    opened: tuple[ClientConnection, str], http: httpx.Client
) -> None:
    ws, session_id = opened
    first = ask(ws, {"id": 1, "inputs": [4, 0], "idempotency_key": "key-1"})
    again = ask(ws, {"id": 2, "inputs": [4, 0], "idempotency_key": "key-1"})
    assert again == {**first, "id": 2, "replayed": True}
    # the same change retried over HTTP: the same fingerprint, the same answer
    retried = http.post(
        f"/v1/sessions/{session_id}/step",
        json={"inputs": [4, 0]},
        headers={"Idempotency-Key": "key-1"},
    )
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json() == {k: v for k, v in first.items() if k != "id"}
    reused = ask(ws, {"id": 3, "inputs": [1], "idempotency_key": "key-1"})
    assert reused["status"] == 422 and reused["error"]["field"] == "Idempotency-Key"
    assert state(http, session_id)["steps"] == 2  # applied once


def test_a_deleted_session_is_answered_404_and_closed_with_4404(
    opened: tuple[ClientConnection, str], http: httpx.Client
) -> None:
    ws, session_id = opened
    assert ask(ws, {"inputs": [3]})["steps"] == 1
    assert http.delete(f"/v1/sessions/{session_id}").status_code == 204
    answer = ask(ws, {"id": "after", "inputs": [1]})
    assert answer["status"] == 404 and answer["error"]["code"] == "not_found"
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def test_the_upgrade_is_refused_for_an_unknown_session_and_a_cross_site_origin(
    server_url: str, http: httpx.Client
) -> None:
    with pytest.raises(InvalidStatus) as unknown:
        connect(ws_url(server_url, "no-such-session"), legacy=True)
    assert unknown.value.response.status_code == 404
    assert json.loads(bytes(unknown.value.response.body or b""))["error"]["field"] == "session_id"
    session_id = create(http, model="memory")
    evil = {"Origin": "https://evil.example"}
    with pytest.raises(InvalidStatus) as cross_site:
        connect(ws_url(server_url, session_id), additional_headers=evil, legacy=True)
    assert cross_site.value.response.status_code == 403
    body = json.loads(bytes(cross_site.value.response.body or b""))
    assert body["error"]["code"] == "origin_not_allowed"
    # a page the server itself serves (same origin, its address a literal IP) may connect
    own = {"Origin": server_url}
    with connect(ws_url(server_url, session_id), additional_headers=own) as ws:
        assert ask(ws, {"inputs": [3]})["steps"] == 1
    plain = http.get(f"/v1/sessions/{session_id}/ws")
    assert plain.status_code == 426 and plain.json()["error"]["code"] == "upgrade_required"
    with pytest.raises(InvalidStatus) as nowhere:  # no WebSocket at that path
        connect(server_url.replace("http", "ws", 1) + "/v1/nope/ws", legacy=True)
    assert nowhere.value.response.status_code == 404
    body = json.loads(bytes(nowhere.value.response.body or b""))
    assert body["error"]["code"] == "not_found" and "/v1/nope/ws" in body["error"]["message"]


def batch_counts(http: httpx.Client) -> tuple[float, float]:
    """(graph calls, rows) of the memory model's steps so far."""
    values = {}
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("seq2seq_batch_rows_") and 'model="memory",operation="step"' in line:
            values[line.split("{")[0]] = float(line.rsplit(" ", 1)[1])
    return values["seq2seq_batch_rows_count"], values["seq2seq_batch_rows_sum"]


def test_concurrent_connections_steps_are_right_and_batched_together(
    server_url: str, http: httpx.Client
) -> None:
    sessions = [create(http, model="memory") for _ in range(6)]
    calls_before, rows_before = batch_counts(http)
    start = threading.Barrier(len(sessions))
    results: dict[str, list[Any]] = {}

    def run(session_id: str, first: int) -> None:
        with connect(ws_url(server_url, session_id)) as ws:
            start.wait(timeout=30)
            results[session_id] = [ask(ws, {"inputs": [first]})["outputs"]]
            results[session_id] += [ask(ws, {"inputs": [n % 3]})["outputs"] for n in range(9)]
            results[session_id].append(ask(ws, {"inputs": [0]})["outputs"])

    threads = [threading.Thread(target=run, args=(s, 3 + n % 2)) for n, s in enumerate(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    calls, rows = batch_counts(http)
    assert rows - rows_before == 66
    assert calls - calls_before < rows - rows_before  # some graph calls took several sessions
    want = {}  # over HTTP, for each first value (memory's last answer is the first it saw)
    for first in (3, 4):
        over_http = create(http, model="memory")
        inputs = [[first], *[[m % 3] for m in range(9)], [0]]
        want[first] = [
            http.post(f"/v1/sessions/{over_http}/step", json={"inputs": x}).json()["outputs"]
            for x in inputs
        ]
    for n, session_id in enumerate(sessions):
        assert results[session_id] == want[3 + n % 2]


def test_the_client_streams_steps_over_one_websocket(server_url: str, http: httpx.Client) -> None:
    over_http = create(http, model="memory")
    want = [
        http.post(f"/v1/sessions/{over_http}/step", json={"inputs": x}).json()["outputs"]
        for x in MEMORY_INPUTS
    ]
    with Client(server_url) as client, client.session("memory") as session:
        assert [a.outputs for a in session.stream_steps(MEMORY_INPUTS)] == want
        assert session.info.steps == 8
        with session.socket() as socket:
            assert socket.generate(max_steps=2).steps == 10
            with pytest.raises(InvalidInput) as refused:
                socket.step([99])
            assert refused.value.field == "inputs[0]"
            assert socket.step([1]).steps == 11  # the same connection, still open


async def test_the_async_client_streams_steps_from_an_async_iterable(server_url: str) -> None:
    async def inputs() -> Any:
        for x in MEMORY_INPUTS:
            yield x

    async with AsyncClient(server_url) as client:
        async with client.session("memory") as session:
            answers = [a.outputs async for a in session.stream_steps(inputs())]
        twin = await client.session("memory")
        want = [(await twin.step(x)).outputs for x in MEMORY_INPUTS]
        await twin.delete()
    assert answers == want


OWNER, OTHER = API_KEYS["socket"], API_KEYS["socket-other"]


def test_the_upgrade_needs_a_key_and_the_session_must_be_the_keys(
    keyed_server: tuple[str, Server],
) -> None:
    url, _ = keyed_server
    with httpx.Client(base_url=url, headers={"X-API-Key": OWNER}, timeout=30) as http:
        session_id = create(http, model="memory")
    target = ws_url(url, session_id)
    for headers, status, code in (
        ({}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-a-key-0123456789"}, 401, "unauthorized"),
        ({"Authorization": f"Bearer {OTHER}"}, 404, "not_found"),  # another key's, as on HTTP
    ):
        with pytest.raises(InvalidStatus) as refused:
            connect(target, additional_headers=headers, legacy=True)
        response = refused.value.response
        assert response.status_code == status, headers
        assert json.loads(bytes(response.body or b""))["error"]["code"] == code
        assert ("WWW-Authenticate" in response.headers) == (status == 401)
    for steps, headers in enumerate(
        ({"Authorization": f"Bearer {OWNER}"}, {"X-API-Key": OWNER}), 1
    ):
        with connect(target, additional_headers=headers) as ws:
            assert ask(ws, {"inputs": [3]})["steps"] == steps
