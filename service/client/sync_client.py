"""The synchronous client: `with Client(url) as client: client.predict(...)`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from time import sleep
from types import TracebackType
from typing import Any, Self, overload

import httpx
from httpx_sse import EventSource, connect_sse
from typing_extensions import Unpack

from service.client import calls
from service.client.calls import Answer, Call, Tokens
from service.client.events import EventReader, PredictEvent, is_event_stream
from service.client.options import PredictOptions
from service.client.retry import Attempts, RetryPolicy
from service.client.sync_session import Session
from service.wire.decoding import TokenEvent
from service.wire.model_info import ModelDetail, ModelList, ModelVersionInfo
from service.wire.native import PredictResponse

DEFAULT_URL = "http://127.0.0.1:8000"


class Client:
    """Typed calls on the service's native API (/v1, /predict), on httpx.

    429 and 503 answers are retried (at most `retries` times, waiting their Retry-After
    capped by `max_retry_wait`), and so are connection failures where sending again is
    safe (service/client/retry.py); then the typed error (service/client/errors.py)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        max_retry_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = RetryPolicy(retries, max_retry_wait)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=calls.headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def models(self) -> ModelList:
        return self._send(calls.models(), ModelList)

    @overload
    def model(self, name: str) -> ModelDetail: ...
    @overload
    def model(self, name: str, version: int | str) -> ModelVersionInfo: ...
    def model(self, name: str, version: int | str | None = None) -> ModelVersionInfo:
        """The model's default version with its versions, or one version."""
        answer = ModelDetail if version is None else ModelVersionInfo
        return self._send(calls.model(name, version), answer)

    def predict(
        self,
        inputs: Sequence[Tokens],
        model: str | None = None,
        version: int | str | None = None,
        **options: Unpack[PredictOptions],
    ) -> PredictResponse:
        """POST /predict on a batch of sequences (token lists or texts)."""
        return self._send(calls.predict(inputs, model, version, options), PredictResponse)

    def stream(
        self,
        inputs: Tokens,
        model: str | None = None,
        version: int | str | None = None,
        **options: Unpack[PredictOptions],
    ) -> Iterator[PredictEvent]:
        """One sequence decoded as a stream: a TokenEvent per token, then the
        PredictResponse. Not retried once the stream has started."""
        call = calls.predict([inputs], model, version, options, stream=True)
        return self._send_stream(call, PredictResponse)

    def session(
        self,
        model: str,
        source: Tokens | None = None,
        state: Sequence[Any] | None = None,
        version: int | str | None = None,
    ) -> Session:
        """A new session (`with client.session(...) as s:` deletes it at the end)."""
        return Session.create(self, model, source, state, version)

    def open_session(self, session_id: str) -> Session:
        """An existing session, by its id (NotFound if there is none)."""
        return Session.open(self, session_id)

    def delete_session(self, session_id: str) -> None:
        """DELETE a session by its id, without reading it first (a corrupt one too).
        Sent again after a lost answer; the retry's 404 then means it was deleted."""
        self._exchange(calls.delete(session_id))

    # The I/O. What to send is in calls.py; when to send it again, in retry.py.

    def _exchange(self, call: Call) -> httpx.Response:
        attempts = Attempts(self.policy, call, self.base_url)
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, json=call.body, params=call.params, headers=call.headers
                )
                wait = attempts.after_answer(response)
                if wait is None:
                    return response
            except httpx.TransportError as exc:
                wait = attempts.after_error(exc)
            sleep(wait)

    def _send(self, call: Call, answer: type[Answer]) -> Answer:
        return calls.parse(answer, self._exchange(call).content, call)

    def _send_stream(self, call: Call, answer: type[Answer]) -> Iterator[TokenEvent | Answer]:
        attempts = Attempts(self.policy, call, self.base_url)
        while True:
            started = False
            try:
                with connect_sse(
                    self._http, call.method, call.path, json=call.body, headers=call.headers
                ) as source:
                    if source.response.status_code >= 400:
                        source.response.read()
                    wait = attempts.after_answer(source.response)
                    if wait is None:
                        started = True
                        yield from _events(source, EventReader(answer))
                        return
            except httpx.TransportError as exc:
                if started:
                    attempts.failed(exc)
                wait = attempts.after_error(exc)
            sleep(wait)


def _events(source: EventSource, reader: EventReader[Answer]) -> Iterator[TokenEvent | Answer]:
    if not is_event_stream(source.response):
        yield reader.whole(source.response.read())
        return
    for sse in source.iter_sse():
        event = reader.read(sse.event, sse.data)
        if event is not None:
            yield event
        if reader.done:
            return
    reader.end()
