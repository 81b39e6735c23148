"""The asynchronous client: `async with AsyncClient(url) as client: await client.predict(...)`.
The same calls, retries and errors as the synchronous one (calls.py, retry.py, errors.py);
only the I/O differs."""

from __future__ import annotations

from asyncio import sleep
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Self, overload

import httpx
from httpx_sse import EventSource, aconnect_sse
from typing_extensions import Unpack

from service.client import calls
from service.client.async_session import AsyncSession, SessionStart
from service.client.calls import Answer, Call, Tokens
from service.client.events import EventReader, PredictEvent, is_event_stream
from service.client.options import PredictOptions
from service.client.retry import Attempts, RetryPolicy
from service.client.sync_client import DEFAULT_URL
from service.wire.decoding import TokenEvent
from service.wire.model_info import ModelDetail, ModelList, ModelVersionInfo
from service.wire.native import PredictResponse


class AsyncClient:
    """Client's asynchronous twin (see Client)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        max_retry_wait: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = RetryPolicy(retries, max_retry_wait)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=calls.headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def models(self) -> ModelList:
        return await self._send(calls.models(), ModelList)

    @overload
    async def model(self, name: str) -> ModelDetail: ...
    @overload
    async def model(self, name: str, version: int | str) -> ModelVersionInfo: ...
    async def model(self, name: str, version: int | str | None = None) -> ModelVersionInfo:
        answer = ModelDetail if version is None else ModelVersionInfo
        return await self._send(calls.model(name, version), answer)

    async def predict(
        self,
        inputs: Sequence[Tokens],
        model: str | None = None,
        version: int | str | None = None,
        **options: Unpack[PredictOptions],
    ) -> PredictResponse:
        return await self._send(calls.predict(inputs, model, version, options), PredictResponse)

    def stream(
        self,
        inputs: Tokens,
        model: str | None = None,
        version: int | str | None = None,
        **options: Unpack[PredictOptions],
    ) -> AsyncIterator[PredictEvent]:
        """`async for event in client.stream(...)`: TokenEvents, then the PredictResponse.
        To stop early and free the connection at once, iterate inside
        `contextlib.aclosing(client.stream(...))`."""
        call = calls.predict([inputs], model, version, options, stream=True)
        return self._send_stream(call, PredictResponse)

    def session(
        self,
        model: str,
        source: Tokens | None = None,
        state: Sequence[Any] | None = None,
        version: int | str | None = None,
    ) -> SessionStart:
        """`await client.session(...)`, or `async with client.session(...) as s:` to have
        it deleted at the end."""
        return SessionStart(self, calls.create_session(model, source, state, version))

    async def open_session(self, session_id: str) -> AsyncSession:
        return await AsyncSession.open(self, session_id)

    async def delete_session(self, session_id: str) -> None:
        """DELETE a session by its id, without reading it first (a corrupt one too).
        Sent again after a lost answer; the retry's 404 then means it was deleted."""
        await self._exchange(calls.delete(session_id))

    # The I/O. What to send is in calls.py; when to send it again, in retry.py.

    async def _exchange(self, call: Call) -> httpx.Response:
        attempts = Attempts(self.policy, call, self.base_url)
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, json=call.body, params=call.params, headers=call.headers
                )
                wait = attempts.after_answer(response)
                if wait is None:
                    return response
            except httpx.TransportError as exc:
                wait = attempts.after_error(exc)
            await sleep(wait)

    async def _send(self, call: Call, answer: type[Answer]) -> Answer:
        return calls.parse(answer, (await self._exchange(call)).content, call)

    async def _send_stream(
        self, call: Call, answer: type[Answer]
    ) -> AsyncIterator[TokenEvent | Answer]:
        attempts = Attempts(self.policy, call, self.base_url)
        while True:
            started = False
            try:
                async with aconnect_sse(
                    self._http, call.method, call.path, json=call.body, headers=call.headers
                ) as source:
                    if source.response.status_code >= 400:
                        await source.response.aread()
                    wait = attempts.after_answer(source.response)
                    if wait is None:
                        started = True
                        async for event in _events(source, EventReader(answer)):
                            yield event
                        return
            except httpx.TransportError as exc:
                if started:
                    attempts.failed(exc)
                wait = attempts.after_error(exc)
            await sleep(wait)


async def _events(
    source: EventSource, reader: EventReader[Answer]
) -> AsyncIterator[TokenEvent | Answer]:
    if not is_event_stream(source.response):
        yield reader.whole(await source.response.aread())
        return
    async for sse in source.aiter_sse():
        event = reader.read(sse.event, sse.data)
        if event is not None:
            yield event
        if reader.done:
            return
    reader.end()
