"""413 for a request body over SERVICE_MAX_BODY_BYTES, before anything parses it.

A declared `Content-Length` over the limit is answered at once, without reading the
body; a body sent without one (chunked) is counted as it arrives and refused as soon
as it passes the limit. A plain ASGI middleware: it costs one header scan per request.
A WebSocket has no body: its messages are bounded by the protocol itself
(SERVICE_WS_MAX_MESSAGE_BYTES, api/connections/websocket.py).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_response
from service.digits import decimal
from service.errors import PayloadTooLarge


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, what: str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"body: {what} the limit of {self.max_bytes:,} bytes (SERVICE_MAX_BODY_BYTES)",
            field="body",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            length = decimal(value) if name == b"content-length" else None
            if length is not None and length > self.max_bytes:
                too_large = self._too_large(f"{length:,} bytes exceeds")
                await error_response(too_large, scope["path"])(scope, receive, send)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # raised inside the route's body read: answered by the error handler
                    raise self._too_large(f"{received:,} bytes received so far exceed")
            return message

        await self.app(scope, counted, send)
