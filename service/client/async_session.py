"""A session on the server, through the asynchronous client (see Session)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from typing_extensions import Unpack

from service.client import calls
from service.client.async_socket import AsyncSessionSocket
from service.client.calls import Tokens
from service.client.errors import ClientError, NotFound
from service.client.events import StepEvent
from service.client.options import DecodingOptions
from service.wire.native import SessionInfo, StepResponse

if TYPE_CHECKING:
    from service.client.async_client import AsyncClient


class AsyncSession:
    """Session's asynchronous twin: the same calls, keys, retries and errors."""

    def __init__(self, client: AsyncClient, info: SessionInfo) -> None:
        self.client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info.session_id

    def __repr__(self) -> str:
        return f"AsyncSession({self.id!r}, model={self.info.model!r}, steps={self.info.steps})"

    @classmethod
    async def create(
        cls,
        client: AsyncClient,
        model: str,
        source: Tokens | None = None,
        state: Sequence[Any] | None = None,
        version: int | str | None = None,
    ) -> Self:
        """See Session.create (the same retry rules)."""
        call = calls.create_session(model, source, state, version)
        return cls(client, await client._send(call, SessionInfo))

    @classmethod
    async def open(cls, client: AsyncClient, session_id: str) -> Self:
        info = await client._send(calls.session_info(session_id, False), SessionInfo)
        return cls(client, info)

    async def step(self, inputs: Tokens, return_probabilities: bool = False) -> StepResponse:
        call = calls.step(self.id, inputs, return_probabilities)
        answer = await self.client._send(call, StepResponse)
        self.info = calls.stepped(self.info, answer)
        return answer

    async def generate(
        self, max_steps: int | None = None, **options: Unpack[DecodingOptions]
    ) -> StepResponse:
        call = calls.generate(self.id, max_steps, options)
        answer = await self.client._send(call, StepResponse)
        self.info = calls.stepped(self.info, answer)
        return answer

    def stream_generate(
        self, max_steps: int | None = None, **options: Unpack[DecodingOptions]
    ) -> AsyncIterator[StepEvent]:
        return self._stream(calls.generate(self.id, max_steps, options, stream=True))

    async def _stream(self, call: calls.Call) -> AsyncIterator[StepEvent]:
        async for event in self.client._send_stream(call, StepResponse):
            if isinstance(event, StepResponse):
                self.info = calls.stepped(self.info, event)
            yield event

    def socket(self) -> AsyncSessionSocket:
        """See Session.socket (`async with session.socket() as socket:`)."""
        return AsyncSessionSocket(self)

    async def stream_steps(
        self, inputs: Iterable[Tokens] | AsyncIterable[Tokens], return_probabilities: bool = False
    ) -> AsyncIterator[StepResponse]:
        """See Session.stream_steps; `inputs` may also be an async iterable."""
        async with self.socket() as socket:
            if isinstance(inputs, AsyncIterable):
                async for one in inputs:
                    yield await socket.step(one, return_probabilities)
            else:
                for one in inputs:
                    yield await socket.step(one, return_probabilities)

    async def state(self, include_state: bool = True) -> SessionInfo:
        self.info = await self.client._send(calls.session_info(self.id, include_state), SessionInfo)
        return self.info

    async def set_state(self, state: Sequence[Any]) -> SessionInfo:
        self.info = await self.client._send(calls.set_state(self.id, state), SessionInfo)
        return self.info

    async def reset(self) -> SessionInfo:
        self.info = await self.client._send(calls.reset(self.id), SessionInfo)
        return self.info

    async def delete(self) -> None:
        await self.client.delete_session(self.id)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self.delete()
        except NotFound:
            pass
        except ClientError:
            if error is None:
                raise


class SessionStart:
    """What AsyncClient.session answers: awaited, the new session; used with
    `async with`, the new session, deleted on exit. The request is built (and checked)
    at once, sent when awaited or entered."""

    def __init__(self, client: AsyncClient, call: calls.Call) -> None:
        self._client = client
        self._call = call
        self._session: AsyncSession | None = None

    async def _create(self) -> AsyncSession:
        return AsyncSession(self._client, await self._client._send(self._call, SessionInfo))

    def __await__(self) -> Generator[Any, None, AsyncSession]:
        return self._create().__await__()

    async def __aenter__(self) -> AsyncSession:
        self._session = await self._create()
        return self._session

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.__aexit__(kind, error, traceback)
