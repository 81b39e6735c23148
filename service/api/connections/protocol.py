"""HTTP/1.1 connections that a slow, idle or oversized client cannot hold.

uvicorn's httptools protocol (what `http="auto"` picks, httptools coming with
uvicorn[standard]), with what it lacks:
- a request line and headers over SERVICE_MAX_HEADER_BYTES get 431, counted as the
  bytes arrive (httptools itself buffers a header of any size, copying it on every read);
- headers not complete SERVICE_HEADER_TIMEOUT_SECONDS after the connection opened (on a
  kept-alive connection: after the request's first byte) get 408; a connection that
  sent nothing is closed;
- a body not complete SERVICE_BODY_TIMEOUT_SECONDS after its headers gets 408 (or, once
  the answer is on its way, the connection closes after it);
- connections beyond SERVICE_MAX_CONNECTIONS (connection_cap.py).
Answers made here (connection_answers.py) go straight to the socket with `Connection:
close`; then the server half-closes and discards what the client still sends for up to
LINGER_SECONDS, so the client reads the answer instead of a reset.

Only httptools: h11 bounds headers (h11_max_incomplete_event_size, answered 400) but has
no header or body timeout either, and one guarded parser is enough. A connection upgraded
to a WebSocket (websocket.py) keeps its place in the count until it closes; one in the
probe band is refused (503) instead of upgraded.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, ClassVar, Literal

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.api.connections.answers import (
    BodyDeadline,
    Limits,
    ProbesOnly,
    RequestTimeout,
    at_cap_message,
    raw_answer,
)
from service.api.connections.cap import Band, ConnectionCap
from service.api.connections.websocket import GuardedWebSocket

LINGER_SECONDS = 2.0


class GuardedProtocol(HttpToolsProtocol):
    limits: ClassVar[Limits]
    cap: ClassVar[ConnectionCap]

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.band: Band | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.header_bytes = 0
        # where the request being read stands: none begun, headers, or body
        self.reading: Literal["none", "headers", "body"] = "none"
        self.finished = False  # answered or closed here: whatever still arrives is discarded
        # header bytes: a read that also ended the message before this one counts what
        # the parser has handed over (URL, whole headers); later reads count whole
        self.began = self.ended = self.after_other = False
        self.known_header_bytes = 0
        self.late: object = None  # the scope of a request whose body came too late

    # ---------------------------------------------------------------- connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        band = self.cap.admit(self)
        if band is None:
            self.finished = True
            transport.write(raw_answer(503, "too_many_connections", at_cap_message(self.cap)))
            transport.close()  # at once: the point is to give the descriptor back
            return
        self.band = band
        self.app = BodyDeadline(self.app, self)
        if band is self.cap.probes:
            self.app = ProbesOnly(self.app, self.cap)
        self._arm(self.limits.header_timeout, self._headers_late)
        self._update_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.band is not None:
            self.band.leave(self)
            self.band = None
        super().connection_lost(exc)

    def evict(self) -> None:
        """The cap needs this connection's place (it has nothing in progress)."""
        self.band = None
        self.finished = True
        self._disarm()
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.finished:
            return
        self.began = self.ended = False
        super().data_received(data)
        if self.reading == "headers" and not self.finished and not self.transport.is_closing():
            if self.began and self.after_other:
                self.header_bytes = self.known_header_bytes
            else:
                self.header_bytes += len(data)
            if self.header_bytes > self.limits.max_header_bytes:
                self.cap.tally.add("431 headers too large")
                self._answer(
                    431,
                    "headers_too_large",
                    f"request line and headers exceed {self.limits.max_header_bytes:,} bytes "
                    "(SERVICE_MAX_HEADER_BYTES)",
                )

    # ---------------------------------------------------------------- parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading = "headers"
        self.began, self.after_other = True, self.ended
        self.header_bytes = self.known_header_bytes = 0
        if self.timer is None:  # a kept-alive connection: the clock starts at the first byte
            self._arm(self.limits.header_timeout, self._headers_late)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self.known_header_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self.known_header_bytes += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        self.reading = "body"
        self._arm(self.limits.body_timeout, self._body_late)
        super().on_headers_complete()
        if self.band is self.cap.probes and self.cycle is not None:
            self.cycle.keep_alive = False  # one probe per connection: the band is small
        self._update_waiting()

    def on_message_complete(self) -> None:
        self._disarm()
        self.reading = "none"
        self.ended = True
        super().on_message_complete()
        self._update_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._update_waiting()

    def handle_websocket_upgrade(self) -> None:
        """The connection becomes a WebSocket: its timers stop, its place is kept (in
        progress, never idle) until the WebSocket closes."""
        self._disarm()
        self.finished = True  # the HTTP side reads nothing more
        if self.band is not self.cap.main:
            self.cap.tally.add("WebSocket refused in the probe band")
            self.transport.write(raw_answer(503, "too_many_connections", at_cap_message(self.cap)))
            self.transport.close()
            return
        self.band.waits(self, False)
        upgraded = partial(GuardedWebSocket, on_lost=self._upgraded_closed)
        self.ws_protocol_class = upgraded  # type: ignore[assignment]
        super().handle_websocket_upgrade()

    def _upgraded_closed(self) -> None:
        if self.band is not None:
            self.band.leave(self)
            self.band = None

    # ---------------------------------------------------------------- timeouts
    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self.timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _headers_late(self) -> None:
        self.timer = None
        if self.reading == "none":  # nothing of a request came: nobody to answer
            self.finished = True
            self.transport.close()
            return
        self.cap.tally.add("408 headers late")
        seconds = self.limits.header_timeout
        self._answer(
            408,
            "request_timeout",
            f"request headers not complete within {seconds:g} s (SERVICE_HEADER_TIMEOUT_SECONDS)",
        )

    def _body_late(self) -> None:
        self.timer = None
        cycle = self.cycle
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            # the server has not asked for the body yet: not the client's delay
            self._arm(self.limits.body_timeout, self._body_late)
            return
        self.cap.tally.add("408 body late")
        if cycle is not None and not cycle.response_started:
            self.late = cycle.scope  # the app's wait for the body ends (BodyDeadline)
            cycle.disconnected = True  # and what it sends is dropped
            cycle.message_event.set()
        path = str(cycle.scope.get("path", "")) if cycle is not None else ""
        self._answer(408, RequestTimeout.code, self.body_late_message(), path)

    def body_late_message(self) -> str:
        seconds = self.limits.body_timeout
        return f"request body not complete within {seconds:g} s (SERVICE_BODY_TIMEOUT_SECONDS)"

    # ---------------------------------------------------------------- answers
    def _answer(self, status: int, code: str, message: str, path: str = "") -> None:
        self.finished = True
        self._disarm()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.disconnected:
            # an answer is still due (the request before this one): it ends the connection
            cycle.keep_alive = False
            return
        if cycle is not None and cycle.response_complete and self.reading == "body":
            self.transport.close()  # answered already (say 413 before the body): just close
            return
        if self.band is not None:
            self.band.waits(self, True)  # nothing in progress any more: it may give way
        self.transport.write(raw_answer(status, code, message, path))
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _update_waiting(self) -> None:
        if self.band is None:
            return
        cycle = self.cycle
        idle = (
            (cycle is None or cycle.response_complete)
            and not self.pipeline
            and self.reading != "body"
        )
        self.band.waits(self, idle)


def protocol_class(limits: Limits, cap: ConnectionCap) -> type[GuardedProtocol]:
    """A protocol class for one server: uvicorn builds one instance per connection."""

    class Guarded(GuardedProtocol):
        pass

    Guarded.limits = limits
    Guarded.cap = cap
    return Guarded
