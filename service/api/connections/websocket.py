"""WebSocket connections (session steps: api/native/session_socket.py) on uvicorn's
websockets-sansio protocol, with what the guarded HTTP connection (protocol.py) needs:

- an upgraded connection keeps its place under SERVICE_MAX_CONNECTIONS until it closes,
  and never gives way as idle (an idle WebSocket is closed after
  SERVICE_WS_IDLE_TIMEOUT_SECONDS instead);
- shutdown closes it with 1001 (going away), after the answer in progress if there is
  one, rather than uvicorn's 1012 at once.

Reading pauses while a received message waits for the app (uvicorn's protocol), and the
app reads the next one only once it has answered: a client cannot queue up work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from service.api.middleware.access_log import redact

GOING_AWAY = 1001
SHUTDOWN_REASON = "the server is shutting down"


class RedactedPaths(logging.Filter):
    """uvicorn logs each WebSocket's path ('"WebSocket %s" [accepted]'): a session id
    there is a bearer secret, shown as the access log shows it (`~hash`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and '"WebSocket %s"' in str(record.msg):
            record.args = (args[0], redact(str(args[1])), *args[2:])
        return True


REDACTED = RedactedPaths()


class GuardedWebSocket(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, on_lost: Callable[[], None] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if REDACTED not in self.logger.filters:
            self.logger.addFilter(REDACTED)
        self.on_lost = on_lost  # gives the connection's place back (protocol.py)
        self.reading_app = False  # the app waits for a message: nothing is in progress
        self.going_away = False  # shutting down: close once the answer is sent

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost()
            self.on_lost = None

    async def receive(self) -> ASGIReceiveEvent:
        self.reading_app = True
        try:
            return await super().receive()
        finally:
            self.reading_app = False

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.going_away and message["type"] == "websocket.send":
            self._go_away()

    def shutdown(self) -> None:
        open_ = self.handshake_complete and self.initial_response is None
        if not open_ or self.close_sent or self.disconnected:
            super().shutdown()
            return
        if self.reading_app:
            self._go_away()
        else:
            self.going_away = True  # an answer is being worked on: sent, then closed

    def _go_away(self) -> None:
        self.going_away = False
        if self.close_sent or self.transport.is_closing():
            return
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
        self.conn.send_close(GOING_AWAY, SHUTDOWN_REASON)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()
