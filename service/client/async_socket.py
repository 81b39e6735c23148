"""A session's steps over one WebSocket, through the asynchronous client (see SessionSocket)."""

from __future__ import annotations

import asyncio
from asyncio import sleep
from contextlib import suppress
from types import TracebackType
from typing import TYPE_CHECKING, Self

from typing_extensions import Unpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from service.client import calls, sockets
from service.client.calls import Tokens
from service.client.errors import ConnectionFailed, ServiceError, from_answer
from service.client.options import DecodingOptions
from service.wire.native import StepResponse

if TYPE_CHECKING:
    from service.client.async_session import AsyncSession


class AsyncSessionSocket:
    """SessionSocket's asynchronous twin (`async with session.socket() as socket:`)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.url = sockets.url(session.client.base_url, session.id)
        self.messages = sockets.Messages()
        self._connection: ClientConnection | None = None

    async def open(self) -> Self:
        if self._connection is None:
            self._connection = await self._connect()
        return self

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(Exception):  # broken already: only its socket is given back
                await connection.close()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def step(self, inputs: Tokens, return_probabilities: bool = False) -> StepResponse:
        return await self._exchange(self.messages.step(inputs, return_probabilities))

    async def generate(
        self, max_steps: int | None = None, **options: Unpack[DecodingOptions]
    ) -> StepResponse:
        return await self._exchange(self.messages.generate(max_steps, options))

    async def _connect(self) -> ClientConnection:
        http = self.session.client._http
        try:
            return await connect(
                self.url,
                additional_headers=sockets.handshake_headers(http),
                user_agent_header=None,  # the client's own, in the headers
                open_timeout=http.timeout.connect,
                compression=None,
                max_size=None,  # the server's answers, however long
            )
        except InvalidStatus as exc:
            response = exc.response
            raise from_answer(
                response.status_code, bytes(response.body or b""), response.headers
            ) from exc
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ConnectionFailed(f"WebSocket {self.url}: {exc}") from exc

    async def _exchange(self, sent: sockets.Outgoing) -> StepResponse:
        policy = self.session.client.policy
        timeout = self.session.client._http.timeout.read
        retried = 0
        while True:
            try:
                connection = (await self.open())._connection
                assert connection is not None
                await connection.send(sent.text)
                async with asyncio.timeout(timeout):
                    received = await connection.recv()
                result = sockets.answer(received, sent)
            except (ConnectionClosed, TimeoutError, ConnectionFailed) as exc:
                await self._drop()
                code = exc.rcvd.code if isinstance(exc, ConnectionClosed) and exc.rcvd else None
                wait = sockets.reconnect_wait(policy, retried, code)
                if wait is None:
                    if isinstance(exc, ConnectionFailed):
                        raise
                    raise ConnectionFailed(f"WebSocket {self.url}: {exc}") from exc
            else:
                if not isinstance(result, ServiceError):
                    self.session.info = calls.stepped(self.session.info, result)
                    return result
                wait = sockets.retry_wait(policy, retried, result)
                if wait is None:
                    raise result
            retried += 1
            await sleep(wait)
