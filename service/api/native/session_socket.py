"""Session steps over a WebSocket: `GET /v1/sessions/{session_id}/ws`.

The upgrade request passes the same middleware as any request (the Host and Origin
checks, API keys); the session must exist and belong to the key, else the upgrade is
refused with the HTTP error (404, 503...). Then each text message is a step or
generate (service/wire/socket.py), answered in order, one at a time: the next message
is read once the answer to the one before is sent, and the connection reads no more
from its socket while a message waits (uvicorn's protocol pauses reading), so a client
cannot queue up work. Each message is the same dataplane call as its HTTP route, so
steps from many connections share batches as HTTP steps do.

An error answers the message and the connection stays open, except: the session gone
(404: closed with 4404; 410: 4410) and an unexpected error (500: 1011). No message for
SERVICE_WS_IDLE_TIMEOUT_SECONDS: closed with 1000. A message over
SERVICE_WS_MAX_MESSAGE_BYTES: closed with 1009 by the protocol, unread.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from starlette.websockets import WebSocketDisconnect

from service import errors as domain
from service.api.errors import HttpError, error_response, explain_validation, status_of
from service.api.middleware.auth import owner_of
from service.api.native.socket_messages import (
    binary,
    body_of,
    id_of,
    keyed,
    read_json,
    valid_step,
    validated,
    with_id,
)
from service.dataplane.health import loaded
from service.dataplane.idempotency import Answer
from service.dataplane.session_ops import SessionOps
from service.sessions.store import log_id
from service.wire.native import GenerateRequest, StepRequest
from service.wire.socket import GenerateMessage, StepMessage

log = logging.getLogger("service")
router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
PATH = "/{session_id}/ws"

# close codes (RFC 6455 7.4: 4000-4999 are the application's own)
NORMAL, INTERNAL = 1000, 1011  # shutdown: 1001 (api/connections/websocket.py)
CLOSE_FOR_STATUS = {404: 4404, 410: 4410}  # the session is gone: nothing more can succeed


class UpgradeRequired(HttpError):
    status = 426
    code = "upgrade_required"


@router.get(PATH, include_in_schema=False)
async def not_upgraded(session_id: str, request: Request) -> None:
    """The WebSocket's path asked without `Upgrade: websocket`."""
    raise UpgradeRequired(
        "this path is a WebSocket (session steps, docs/sessions.md): connect with "
        "ws:// or wss:// (an HTTP GET with 'Connection: Upgrade' and 'Upgrade: websocket')",
        field="Upgrade",
    )


@router.websocket(PATH)
async def session_socket(websocket: WebSocket, session_id: str) -> None:
    owner = owner_of(websocket)
    path: str = websocket.scope["path"]
    try:
        runtime = loaded(websocket.app.state.runtime)
        ops = runtime.sessions
        assert ops is not None
        await ops.get(session_id, False, owner)  # exists, and is this key's
    except domain.ServiceError as refused:
        await websocket.send_denial_response(error_response(refused, path))
        return
    await websocket.accept()
    settings = runtime.settings
    channel = Channel(websocket, ops, session_id, owner, settings.ws_idle_timeout_seconds)
    # the client went away (or the server is shutting down: 1001)
    with suppress(WebSocketDisconnect):
        await channel.serve()


async def no_socket(websocket: WebSocket) -> None:
    """A WebSocket upgrade to any other path: refused 404, with the error body an HTTP
    request there gets (Starlette alone would close it with an empty 403)."""
    path: str = websocket.scope["path"]
    missing = domain.NotFound(
        f"no WebSocket at '{path}'; session steps: /v1/sessions/{{session_id}}/ws"
    )
    await websocket.send_denial_response(error_response(missing, path))


class Channel:
    """One accepted connection: its messages in, answers out, one at a time."""

    def __init__(
        self,
        websocket: WebSocket,
        ops: SessionOps,
        session_id: str,
        owner: str | None,
        idle_seconds: float,
    ):
        self.websocket = websocket
        self.ops = ops
        self.session_id = session_id
        self.owner = owner
        self.idle_seconds = idle_seconds

    async def serve(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.idle_seconds):
                    message = await self.websocket.receive()
            except TimeoutError:
                reason = f"idle for {self.idle_seconds:g} s (SERVICE_WS_IDLE_TIMEOUT_SECONDS)"
                await self.websocket.close(NORMAL, reason)
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self._error(None, binary())
                continue
            close = await self._answer(text.encode())
            if close is not None:
                code, reason = close
                await self.websocket.close(code, reason)
                return

    async def _answer(self, raw: bytes) -> tuple[int, str] | None:
        """Answers one message; a close code and reason when the connection must end."""
        message_id: Any = None
        try:
            message: StepMessage | GenerateMessage | None = valid_step(raw)
            if message is None:
                data = read_json(raw)
                message_id = id_of(data)
                message = validated(data, raw)
            else:
                message_id = message.id
            answer = await self._apply(message)
        except domain.ServiceError as exc:
            status = await self._error(message_id, exc)
            code = CLOSE_FOR_STATUS.get(status)
            return None if code is None else (code, exc.code)
        except RequestValidationError as exc:
            kind, text, field = explain_validation(exc.errors())
            await self._send_error(message_id, 422, kind, text, field)
            return None
        except WebSocketDisconnect:
            raise
        except Exception:
            log.exception("unexpected error in a session's WebSocket %s", log_id(self.session_id))
            await self._send_error(message_id, 500, "internal_error", "internal server error")
            return INTERNAL, "internal error"
        await self.websocket.send_text(with_id(answer, message_id))
        return None

    async def _apply(self, message: StepMessage | GenerateMessage) -> Answer:
        if isinstance(message, StepMessage):
            step = body_of(message, StepRequest)
            key = keyed(message, "step", step)
            return await self.ops.step(self.session_id, step, self.owner, key)
        generate = body_of(message, GenerateRequest)
        if generate.stream:
            raise domain.InvalidInput(
                'stream: not over a WebSocket (each message gets one answer); omit "stream"',
                field="stream",
            )
        key = keyed(message, "generate", generate)
        return await self.ops.generate(self.session_id, generate, self.owner, key)

    async def _error(self, message_id: Any, exc: domain.ServiceError) -> int:
        status = status_of(exc)
        await self._send_error(
            message_id, status, exc.code, exc.message, exc.field, exc.retry_after
        )
        return status

    async def _send_error(
        self,
        message_id: Any,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if field is not None:
            error["field"] = field
        sent: dict[str, Any] = {"status": status, "error": error}
        if message_id is not None:
            sent = {"id": message_id, **sent}
        if retry_after is not None:
            sent["retry_after"] = max(1, round(retry_after + 0.4999))
        await self.websocket.send_text(json.dumps(sent, separators=(",", ":")))
