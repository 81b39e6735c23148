"""Server-sent events (text/event-stream) from the dataplane's event iterators.

The response asks the iterator for its next event only after the previous one was
sent, and tells it the client is gone through `alive()` (a watcher reads the ASGI
`http.disconnect`): decoding stops at the next token, nothing is cancelled mid-step,
and a session's state is saved as of the last token sent. Errors after the stream
started (e.g. the session store failing) end it with an `error` event carrying the
usual error body.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from service.dataplane.streams import Alive, Event
from service.errors import ServiceError
from service.wire.native import ErrorBody, ErrorDetail

log = logging.getLogger("service")
MEDIA_TYPE = "text/event-stream"
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # proxies such as nginx: do not buffer the stream
]


def documented(result: str) -> dict[int | str, dict[str, Any]]:
    """The 200 answer's second media type, for routes that stream on "stream": true."""
    description = (
        '"stream": true: server-sent events. `event: token` / `data: {"index", "token", '
        '"text"?, "score"?}` per decoded token as soon as it is chosen (greedy and sample), '
        f"then `event: result` / `data: {result}` (the unstreamed answer); an error after "
        "the stream started: `event: error` / `data: ErrorBody`"
    )
    # one event, as OpenAPI 3.2 describes text/event-stream (what each event's data holds
    # is in the description: JSON Schema's content keywords are annotations only)
    schema = {
        "type": "object",
        "description": description,
        "required": ["event", "data"],
        "properties": {
            "event": {"enum": ["token", "result", "error"]},
            "data": {"type": "string", "contentMediaType": "application/json"},
        },
    }
    return {200: {"content": {MEDIA_TYPE: {"schema": schema}}}}


def encode(event: Event) -> bytes:
    data = event.data.model_dump_json(exclude_none=True)
    return f"event: {event.name}\ndata: {data}\n\n".encode()


def _error(exc: Exception) -> bytes:
    if isinstance(exc, ServiceError):
        detail = ErrorDetail(code=exc.code, message=exc.message, field=exc.field)
    else:
        log.exception("stream failed")
        detail = ErrorDetail(code="internal_error", message="the stream failed; it was logged")
    return f"event: error\ndata: {ErrorBody(error=detail).model_dump_json()}\n\n".encode()


class Connection:
    """Whether the client is still there."""

    def __init__(self) -> None:
        self.gone = False

    def alive(self) -> bool:
        return not self.gone

    async def watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True


class EventStream(Response):
    """`first` (already computed, so errors before it were ordinary answers), then the
    rest of `events`."""

    media_type = MEDIA_TYPE

    def __init__(self, first: Event, events: AsyncIterator[Event], connection: Connection):
        super().__init__(media_type=MEDIA_TYPE)
        self.first = first
        self.events = events
        self.connection = connection
        self.failed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = 0
        async with anyio.create_task_group() as watcher:
            watcher.start_soon(self.connection.watch, receive)
            try:
                await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
                await self._send(send, encode(self.first))
                sent = 1
                while (chunk := await self._next()) is not None:
                    await self._send(send, chunk)
                    sent += 1
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:  # the client went away mid-send
                self.connection.gone = True
            finally:
                with anyio.CancelScope(shield=True):
                    await _close(self.events)
                watcher.cancel_scope.cancel()
        if self.connection.gone:  # an ordinary end, not an error
            log.info("stream ended: the client went away after %d event(s)", sent)

    async def _next(self) -> bytes | None:
        """The next event, encoded; an error raised by the events as an `error` event
        (after the 200, the client learns it in-band); None once the events end (also
        after an error event)."""
        if self.failed:
            return None
        try:
            event = await anext(self.events)
        except StopAsyncIteration:
            return None
        except Exception as exc:
            self.failed = True
            return _error(exc)
        return encode(event)

    async def _send(self, send: Send, chunk: bytes) -> None:
        if self.connection.gone:
            raise OSError("client disconnected")
        await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _close(events: AsyncIterator[Event]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


async def start(events: AsyncIterator[Event], connection: Connection) -> EventStream:
    """The stream's first event now (a failing check raises as usual), then the rest."""
    first = await anext(aiter(events))
    return EventStream(first, events, connection)


__all__ = ["Alive", "Connection", "EventStream", "start"]
