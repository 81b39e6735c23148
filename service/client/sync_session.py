"""A session on the server, through the synchronous client."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from typing_extensions import Unpack

from service.client import calls
from service.client.calls import Tokens
from service.client.errors import ClientError, NotFound
from service.client.events import StepEvent
from service.client.options import DecodingOptions
from service.client.sync_socket import SessionSocket
from service.wire.native import SessionInfo, StepResponse

if TYPE_CHECKING:
    from service.client.sync_client import Client


class Session:
    """One client's recurrent state kept by the server. Changes (step, generate,
    set_state, reset) carry a fresh Idempotency-Key each, kept on their retries, so a
    retried change is applied once (a streamed generate has none: see stream_generate).
    `info` is what the server last said about it.

    As a context manager, deletes the session on exit: one already gone is fine, and when
    the block raised, a failed delete does not hide that error."""

    def __init__(self, client: Client, info: SessionInfo) -> None:
        self.client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info.session_id

    def __repr__(self) -> str:
        return f"Session({self.id!r}, model={self.info.model!r}, steps={self.info.steps})"

    @classmethod
    def create(
        cls,
        client: Client,
        model: str,
        source: Tokens | None = None,
        state: Sequence[Any] | None = None,
        version: int | str | None = None,
    ) -> Self:
        """POST /v1/sessions: zeros, or the state of a seq2seq `source`, or `state`.
        Retried after 429/503 and when the connection could not be opened, never once the
        request may have reached the server (see calls.create_session)."""
        call = calls.create_session(model, source, state, version)
        return cls(client, client._send(call, SessionInfo))

    @classmethod
    def open(cls, client: Client, session_id: str) -> Self:
        return cls(client, client._send(calls.session_info(session_id, False), SessionInfo))

    def step(self, inputs: Tokens, return_probabilities: bool = False) -> StepResponse:
        call = calls.step(self.id, inputs, return_probabilities)
        answer = self.client._send(call, StepResponse)
        self.info = calls.stepped(self.info, answer)
        return answer

    def generate(
        self, max_steps: int | None = None, **options: Unpack[DecodingOptions]
    ) -> StepResponse:
        answer = self.client._send(calls.generate(self.id, max_steps, options), StepResponse)
        self.info = calls.stepped(self.info, answer)
        return answer

    def stream_generate(
        self, max_steps: int | None = None, **options: Unpack[DecodingOptions]
    ) -> Iterator[StepEvent]:
        """generate as a stream: a TokenEvent per token, then the StepResponse. Sent
        without an Idempotency-Key (a stream cannot be replayed): not retried once the
        request may have reached the server. A stream that breaks leaves the session as of
        the last token sent."""
        return self._stream(calls.generate(self.id, max_steps, options, stream=True))

    def _stream(self, call: calls.Call) -> Iterator[StepEvent]:
        for event in self.client._send_stream(call, StepResponse):
            if isinstance(event, StepResponse):
                self.info = calls.stepped(self.info, event)
            yield event

    def socket(self) -> SessionSocket:
        """A WebSocket to this session: `step` and `generate` without a request each
        (`with session.socket() as socket: socket.step([3])`). It connects when entered
        or on its first message."""
        return SessionSocket(self)

    def stream_steps(
        self, inputs: Iterable[Tokens], return_probabilities: bool = False
    ) -> Iterator[StepResponse]:
        """Each of `inputs` stepped in turn over one WebSocket, its answer yielded before
        the next is sent (an error stops there: nothing after it is applied). Inputs may
        come from a generator, as they become known."""
        with self.socket() as socket:
            for one in inputs:
                yield socket.step(one, return_probabilities)

    def state(self, include_state: bool = True) -> SessionInfo:
        """GET the session, with its state tensors (and memory, for attention models)."""
        self.info = self.client._send(calls.session_info(self.id, include_state), SessionInfo)
        return self.info

    def set_state(self, state: Sequence[Any]) -> SessionInfo:
        """PUT the state tensors (nested lists or numpy arrays); steps are kept."""
        self.info = self.client._send(calls.set_state(self.id, state), SessionInfo)
        return self.info

    def reset(self) -> SessionInfo:
        """Zeros, steps back to 0."""
        self.info = self.client._send(calls.reset(self.id), SessionInfo)
        return self.info

    def delete(self) -> None:
        """DELETE. Retried after a lost answer too; NotFound if there was no session."""
        self.client.delete_session(self.id)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.delete()
        except NotFound:
            pass
        except ClientError:
            if error is None:
                raise  # else the error that ended the block is the one to see
