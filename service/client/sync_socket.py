"""A session's steps over one WebSocket, through the synchronous client (see sockets.py)."""

from __future__ import annotations

from contextlib import suppress
from time import sleep
from types import TracebackType
from typing import TYPE_CHECKING, Self

from typing_extensions import Unpack
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.sync.client import ClientConnection, connect

from service.client import calls, sockets
from service.client.calls import Tokens
from service.client.errors import ConnectionFailed, ServiceError, from_answer
from service.client.options import DecodingOptions
from service.wire.native import StepResponse

if TYPE_CHECKING:
    from service.client.sync_session import Session


class SessionSocket:
    """One WebSocket to a session: `step` and `generate` as over HTTP, each one message
    and its answer, without a request each. Close it (or use `with`) when done."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.url = sockets.url(session.client.base_url, session.id)
        self.messages = sockets.Messages()
        self._connection: ClientConnection | None = None

    def open(self) -> Self:
        if self._connection is None:
            self._connection = self._connect()
        return self

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(Exception):  # broken already: only its socket is given back
                connection.close()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def step(self, inputs: Tokens, return_probabilities: bool = False) -> StepResponse:
        return self._exchange(self.messages.step(inputs, return_probabilities))

    def generate(
        self, max_steps: int | None = None, **options: Unpack[DecodingOptions]
    ) -> StepResponse:
        return self._exchange(self.messages.generate(max_steps, options))

    def _connect(self) -> ClientConnection:
        http = self.session.client._http
        try:
            return connect(
                self.url,
                additional_headers=sockets.handshake_headers(http),
                user_agent_header=None,  # the client's own, in the headers
                open_timeout=http.timeout.connect,
                compression=None,
                max_size=None,  # the server's answers, however long
                legacy=True,
            )
        except InvalidStatus as exc:
            response = exc.response
            raise from_answer(
                response.status_code, bytes(response.body or b""), response.headers
            ) from exc
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise ConnectionFailed(f"WebSocket {self.url}: {exc}") from exc

    def _exchange(self, sent: sockets.Outgoing) -> StepResponse:
        policy = self.session.client.policy
        timeout = self.session.client._http.timeout.read
        retried = 0
        while True:
            try:
                connection = self.open()._connection
                assert connection is not None
                connection.send(sent.text)
                result = sockets.answer(connection.recv(timeout), sent)
            except (ConnectionClosed, TimeoutError, ConnectionFailed) as exc:
                self._drop()
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
            sleep(wait)
