"""The client's retries on httpx.MockTransport: which answers and failures are sent again,
after how long, and with the same Idempotency-Key so a retried change applies once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from service.client import (
    AsyncClient,
    Client,
    ConnectionFailed,
    SessionCapReached,
    Unavailable,
)

pytestmark = pytest.mark.unit

URL = "http://service.test"
INFO = {
    "session_id": "s1",
    "model": "memory",
    "version": "1",
    "steps": 0,
    "created_at": "2026-01-01T00:00:00+00:00",
    "expires_at": "2026-01-01T00:30:00+00:00",
}
STEPPED = {"session_id": "s1", "outputs": [0], "steps": 1}
PREDICTED = {"model": "reverse", "version": "1", "outputs": [[40, 36, 20]]}
BUSY = {"error": {"code": "overloaded", "message": "the model's queue is full"}}


def refusal(status: int = 503, retry_after: str = "0", body: object = BUSY) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"Retry-After": retry_after})


Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """Answers each request with the next of `answers` (a response, or an exception to
    raise), and records what was sent. Creates sessions (INFO) without an answer of its
    own unless `creates` is False."""

    def __init__(self, *answers: httpx.Response | Exception, creates: bool = True) -> None:
        self.answers: Iterator[httpx.Response | Exception] = iter(answers)
        self.requests: list[httpx.Request] = []
        self.creates = creates

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.creates and request.method == "POST" and request.url.path == "/v1/sessions":
            return httpx.Response(201, json=INFO)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def keys(self) -> list[str | None]:
        return [r.headers.get("idempotency-key") for r in self.requests if "step" in r.url.path]


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's waits before retries, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr("service.client.sync_client.sleep", recorded.append)
    return recorded


def client(server: Server, retries: int = 3, max_retry_wait: float = 30.0) -> Client:
    transport = httpx.MockTransport(server)
    return Client(URL, retries=retries, max_retry_wait=max_retry_wait, transport=transport)


def test_a_503_is_retried_once_with_the_same_idempotency_key(waits: list[float]) -> None:
    server = Server(refusal(), httpx.Response(200, json=STEPPED))
    with client(server) as c:
        answer = c.session("memory").step([3])
    assert answer.outputs == [0] and answer.steps == 1
    keys = server.keys()
    assert len(keys) == 2 and keys[0] is not None and keys[0] == keys[1]
    assert waits == [0.0]


def test_each_change_has_its_own_key(waits: list[float]) -> None:
    server = Server(httpx.Response(200, json=STEPPED), httpx.Response(200, json=STEPPED))
    with client(server) as c:
        session = c.session("memory")
        session.step([3])
        session.step([0])
    first, second = server.keys()
    assert first and second and first != second


def test_gives_up_after_retries_with_the_typed_error(waits: list[float]) -> None:
    server = Server(*[refusal() for _ in range(3)])
    with client(server, retries=2) as c, pytest.raises(Unavailable) as info:
        c.predict([[1, 2, 3]], model="reverse")
    assert len(server.requests) == 3 and len(waits) == 2
    assert info.value.status == 503 and info.value.code == "overloaded"
    assert info.value.headers["retry-after"] == "0"


def test_retry_after_is_capped_by_max_retry_wait(waits: list[float]) -> None:
    server = Server(refusal(retry_after="3600"), httpx.Response(200, json=PREDICTED))
    with client(server, max_retry_wait=0.5) as c:
        assert c.predict([[20, 36, 40, 10, 34, 28]]).outputs == [[40, 36, 20]]
    assert waits == [0.5]


def test_the_session_cap_is_retried_then_raised(waits: list[float]) -> None:
    cap = {"error": {"code": "capacity_exceeded", "message": "session cap reached"}}
    server = Server(refusal(429, "2", cap), refusal(429, "2", cap), creates=False)
    with client(server, retries=1) as c, pytest.raises(SessionCapReached) as info:
        c.session("memory")
    assert info.value.status == 429 and waits == [2.0]


def test_no_retry_on_errors_that_a_retry_cannot_mend(waits: list[float]) -> None:
    missing = {"error": {"code": "not_found", "message": "model 'x' not found"}}
    server = Server(httpx.Response(404, json=missing))
    with client(server) as c, pytest.raises(Exception, match="not_found"):
        c.predict([[1]], model="x")
    assert len(server.requests) == 1 and waits == []


def test_connection_errors(waits: list[float]) -> None:
    request = httpx.Request("POST", URL)
    # never sent: retried, even to create a session
    refused = httpx.ConnectError("connection refused", request=request)
    server = Server(refused, httpx.Response(200, json=PREDICTED))
    with client(server) as c:
        c.predict([[20, 36, 40, 10, 34, 28]])
    assert len(server.requests) == 2
    # a lost answer: predict is sent again, a session change with its key too
    lost = httpx.ReadError("connection reset", request=request)
    server = Server(lost, httpx.Response(200, json=STEPPED))
    with client(server) as c:
        c.session("memory").step([3])
    first, second = server.keys()
    assert first == second


def test_a_create_whose_answer_was_lost_is_not_sent_again(waits: list[float]) -> None:
    sent: list[httpx.Request] = []

    def lose(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        raise httpx.ReadError("connection reset", request=request)

    with Client(URL, transport=httpx.MockTransport(lose)) as c, pytest.raises(ConnectionFailed):
        c.session("memory")
    assert len(sent) == 1


def test_a_delete_whose_answer_was_lost_is_done_when_the_retry_finds_nothing(
    waits: list[float],
) -> None:
    request = httpx.Request("DELETE", URL)
    missing = {"error": {"code": "not_found", "message": "session 's1' not found"}}
    server = Server(httpx.ReadError("reset", request=request), httpx.Response(404, json=missing))
    with client(server) as c:
        c.session("memory").delete()  # no NotFound: the first attempt deleted it
    assert [r.method for r in server.requests] == ["POST", "DELETE", "DELETE"]


async def test_the_async_client_retries_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("service.client.async_client.sleep", sleep)
    server = Server(
        refusal(retry_after="60"), httpx.Response(200, json=STEPPED), httpx.Response(204)
    )
    transport = httpx.MockTransport(server)
    async with (
        AsyncClient(URL, transport=transport, max_retry_wait=1) as c,
        c.session("memory") as session,
    ):
        assert (await session.step([3])).steps == 1
    first, second = server.keys()
    assert first == second and waits == [1.0]
    assert server.requests[-1].method == "DELETE"  # deleted on leaving the block


def test_the_body_is_checked_before_anything_is_sent(waits: list[float]) -> None:
    from pydantic import ValidationError

    server = Server()
    with client(server) as c, pytest.raises(ValidationError, match="beam_widht"):
        c.predict([[1, 2]], beam_widht=4)  # type: ignore[call-arg]
    assert server.requests == []


def test_the_body_sent_holds_only_what_was_given(waits: list[float]) -> None:
    server = Server(httpx.Response(200, json=PREDICTED))
    with client(server) as c:
        c.predict([(20, 36, 40, 10, 34, 28)], model="reverse", strategy="beam", top_k=None)
    assert json.loads(server.requests[0].content) == {
        "model": "reverse",
        "inputs": [[20, 36, 40, 10, 34, 28]],
        "strategy": "beam",
    }


def test_a_streamed_generate_has_no_key_and_is_not_sent_again_once_sent(
    waits: list[float],
) -> None:
    """The server refuses an Idempotency-Key with "stream": true (a stream cannot be
    replayed), so a lost stream is not sent again: it may have been applied."""
    request = httpx.Request("POST", URL)
    server = Server(httpx.ReadError("connection reset", request=request))
    with client(server) as c, pytest.raises(ConnectionFailed):
        list(c.session("reverse").stream_generate(max_steps=3))
    generate = server.requests[-1]
    assert generate.url.path.endswith("/generate") and "idempotency-key" not in generate.headers
    assert json.loads(generate.content) == {"max_steps": 3, "stream": True}
    assert len(server.requests) == 2  # create, then one generate
