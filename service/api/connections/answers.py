"""What a guarded connection (http_protocol.py) answers by itself, and the apps it
wraps around the service's: the probe band's, and the body deadline's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from uvicorn._types import ASGIReceiveCallable, ASGISendCallable, Scope

from service.api.connections.cap import ConnectionCap
from service.api.errors import HttpError, answers_plain, render, retry_header

if TYPE_CHECKING:
    from service.api.connections.protocol import GuardedProtocol

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"})
RETRY = retry_header(1)


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int
    header_timeout: float
    body_timeout: float


def raw_answer(status: int, code: str, message: str, path: str = "") -> bytes:
    """An error answer in the shape `path`'s protocol expects (errors.render's)."""
    error = message if answers_plain(path) else {"code": code, "message": message}
    body = json.dumps({"error": error}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n" + ("retry-after: 1\r\n" if status == 503 else "") + "\r\n"
    )
    return head.encode() + body


def at_cap_message(cap: ConnectionCap) -> str:
    return (
        f"the server holds its maximum of {cap.main.limit} connections "
        "(SERVICE_MAX_CONNECTIONS), each with a request in progress; retry shortly"
    )


class ProbesOnly:
    """The app for a connection in the probe band: health probes, and 503 for the rest."""

    def __init__(self, app: Any, cap: ConnectionCap):
        self.app = app
        self.cap = cap

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        path = str(scope.get("path", ""))
        if path in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        answer = render(path, 503, "too_many_connections", at_cap_message(self.cap), headers=RETRY)
        await answer(scope, receive, send)  # type: ignore[arg-type]


class RequestTimeout(HttpError):
    status = 408
    code = "request_timeout"


class BodyDeadline:
    """The app of every guarded connection. When a body comes too late, the connection
    answers 408 itself (the answer must reach the client, which is still sending); the
    app, waiting for the body, gets RequestTimeout from `receive` instead of a
    disconnect, so it ends as for any refused request (its answer, 408 in the access
    log, is dropped) rather than logging a client disconnect as an unexpected error."""

    def __init__(self, app: Any, protocol: GuardedProtocol):
        self.app = app
        self.protocol = protocol

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        async def deadlined() -> Any:
            message = await receive()
            if self.protocol.late is scope:
                raise RequestTimeout(self.protocol.body_late_message(), field="body")
            return message

        await self.app(scope, deadlined, send)
