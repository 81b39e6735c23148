"""The client's error mapping and streamed events on httpx.MockTransport, and what
importing it costs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from service.client import (
    AnswerNotKept,
    AsyncClient,
    Client,
    ConnectionFailed,
    Forbidden,
    InvalidInput,
    NotFound,
    PredictResponse,
    ProtocolError,
    RateLimited,
    ServiceError,
    SessionCapReached,
    SessionCorrupt,
    StoreUnavailable,
    TokenEvent,
    Unauthorized,
)

pytestmark = pytest.mark.unit

URL = "http://service.test"
RESULT = {"model": "reverse", "version": "1", "outputs": [[40, 36, 20]]}


def error(code: str, message: str = "m", field: str | None = None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "field": field}}


def answering(response: httpx.Response, retries: int = 0) -> Client:
    return Client(URL, retries=retries, transport=httpx.MockTransport(lambda _: response))


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (422, error("invalid_input", "inputs[0][1]: token 99", "inputs[0][1]"), InvalidInput),
        (400, error("invalid_host"), InvalidInput),
        (401, error("unauthorized", field="Authorization"), Unauthorized),
        (403, error("origin_not_allowed"), Forbidden),
        (403, error("forbidden", field="Authorization"), Forbidden),
        (404, error("not_found"), NotFound),
        (409, error("idempotency_answer_too_large", field="Idempotency-Key"), AnswerNotKept),
        (410, error("session_corrupt"), SessionCorrupt),
        (429, error("capacity_exceeded"), SessionCapReached),
        (429, error("too_many"), RateLimited),  # an unknown code: by status
        (503, error("session_store_unavailable"), StoreUnavailable),
    ],
)
def test_error_answers_are_typed_by_code_then_status(
    status: int, body: dict[str, object], kind: type[ServiceError]
) -> None:
    with answering(httpx.Response(status, json=body)) as c, pytest.raises(kind) as info:
        c.models()
    detail = body["error"]
    assert isinstance(detail, dict)
    assert (info.value.status, info.value.code) == (status, detail["code"])
    assert info.value.field == detail["field"]
    assert str(info.value) == f"error {status} {detail['code']}: {detail['message']}"


def test_an_error_answer_that_is_not_json_keeps_its_text() -> None:
    page = httpx.Response(502, text="<html>Bad Gateway</html>")
    with answering(page) as c, pytest.raises(ServiceError) as info:
        c.models()
    assert type(info.value) is ServiceError
    assert (info.value.status, info.value.code) == (502, "http_error")
    assert info.value.message == "<html>Bad Gateway</html>"


def test_an_answer_that_is_not_the_documented_one() -> None:
    with answering(httpx.Response(200, json={"nope": 1})) as c, pytest.raises(ProtocolError):
        c.models()


def sse(*events: tuple[str, object]) -> bytes:
    return b"".join(
        f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events
    )


def stream(content: bytes | httpx.SyncByteStream) -> httpx.Response:
    headers = {"content-type": "text/event-stream; charset=utf-8"}
    if isinstance(content, bytes):
        return httpx.Response(200, headers=headers, content=content)
    return httpx.Response(200, headers=headers, stream=content)


TOKENS = [("token", {"index": i, "token": t}) for i, t in enumerate([40, 36, 20])]


def test_a_stream_yields_tokens_then_the_result() -> None:
    body = b": keep-alive\n\n" + sse(*TOKENS, ("result", RESULT))
    with answering(stream(body)) as c:
        events = list(c.stream([20, 36, 40, 10, 34, 28], model="reverse"))
    assert [e.token for e in events[:3] if isinstance(e, TokenEvent)] == [40, 36, 20]
    assert isinstance(events[3], PredictResponse) and events[3].outputs == [[40, 36, 20]]
    assert len(events) == 4


def test_a_stream_sends_stream_true_and_one_sequence() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return stream(sse(("result", RESULT)))

    with Client(URL, transport=httpx.MockTransport(handler)) as c:
        list(c.stream("21 Nov 2026", model="dates", strategy="sample", seed=3))
    assert json.loads(sent[0].content) == {
        "model": "dates",
        "inputs": ["21 Nov 2026"],
        "strategy": "sample",
        "seed": 3,
        "stream": True,
    }
    assert sent[0].headers["accept"] == "text/event-stream"


def test_an_error_event_raises_the_typed_error() -> None:
    body = sse(TOKENS[0], ("error", error("compute_failed", "the model failed")))
    with answering(stream(body)) as c, pytest.raises(ServiceError) as info:
        list(c.stream([1, 2, 3]))
    assert (info.value.status, info.value.code) == (500, "compute_failed")


def test_a_stream_that_ends_without_its_result() -> None:
    with answering(stream(sse(*TOKENS))) as c, pytest.raises(ProtocolError):
        list(c.stream([1, 2, 3]))


def test_a_replayed_json_answer_is_the_result_alone() -> None:
    with answering(httpx.Response(200, json=RESULT)) as c:
        events = list(c.stream([1, 2, 3]))
    assert [type(e) for e in events] == [PredictResponse]


class Broken(httpx.SyncByteStream):
    """A stream whose connection breaks after the first token."""

    def __iter__(self) -> Iterator[bytes]:
        yield sse(TOKENS[0])
        raise httpx.ReadError("connection reset")


def test_a_started_stream_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("service.client.sync_client.sleep", lambda _: None)
    answers = iter([httpx.Response(503, json=error("overloaded")), stream(Broken())])
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return next(answers)

    with Client(URL, transport=httpx.MockTransport(handler)) as c:
        events = c.stream([1, 2, 3])
        assert isinstance(next(events), TokenEvent)  # refused once, then started
        with pytest.raises(ConnectionFailed):
            next(events)
    assert len(requests) == 2


async def test_the_async_stream() -> None:
    body = sse(*TOKENS, ("result", RESULT))
    transport = httpx.MockTransport(lambda _: stream(body))
    async with AsyncClient(URL, transport=transport) as c:
        events = [e async for e in c.stream([20, 36, 40, 10, 34, 28])]
    assert [type(e) for e in events] == [TokenEvent] * 3 + [PredictResponse]


def test_importing_the_client_and_its_commands_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, service.client, service.cli.commands, service.__main__\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('service', 'tensorflow', 'keras', 'numpy', 'fastapi', 'starlette', 'uvicorn'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    own = ("service.client", "service.cli", "service.__main__")
    wire = {
        "service",
        "service.wire",
        "service.wire.model_info",
        "service.wire.native",
        "service.wire.decoding",
        "service.wire.socket",
        "service.wire.types",
    }
    imported = set(out.stdout.split())
    assert {m for m in imported if not m.startswith(own)} == wire
