"""Session steps over one WebSocket (GET /v1/sessions/{id}/ws, docs/sessions.md): what
each message says and what each answer means. Shared by both clients; only the I/O
differs (sync_socket.py, async_socket.py).

Each message carries an `id` (a counter, checked against the answer's) and a fresh
`idempotency_key`, kept when the message is sent again, so a message resent after a lost
connection is applied once. Sent again, at most `retries` times: an error answer 429 or
503 (nothing applied), after its `retry_after` capped by `max_retry_wait`; and the
message whose connection broke, on a new connection. A session gone (404, 410) ends it.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import ValidationError

from service.client import calls
from service.client.calls import Tokens
from service.client.errors import ProtocolError, ServiceError, error_for
from service.client.retry import RETRY_STATUSES, RetryPolicy
from service.wire.native import StepResponse
from service.wire.socket import GenerateMessage, SocketError, StepMessage

SCHEMES = {"http": "ws", "https": "wss"}
# the server's close codes for a session that is gone (api/native/session_socket.py)
SESSION_GONE = frozenset({4404, 4410})
HANDSHAKE_HEADERS = ("authorization", "user-agent")  # of the HTTP client's own


def url(base_url: str, session_id: str) -> str:
    """http://host:8000 -> ws://host:8000/v1/sessions/ID/ws (https -> wss)."""
    parts = urlsplit(base_url)
    scheme = SCHEMES.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + f"/v1/sessions/{calls._segment(session_id)}/ws"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def handshake_headers(http: httpx.Client | httpx.AsyncClient) -> dict[str, str]:
    """The HTTP client's key and user agent, for the upgrade request."""
    return {name: http.headers[name] for name in HANDSHAKE_HEADERS if name in http.headers}


@dataclass(frozen=True)
class Outgoing:
    id: int
    text: str


class Messages:
    """The messages of one socket, numbered from 1."""

    def __init__(self) -> None:
        self.numbers = itertools.count(1)

    def step(self, inputs: Tokens, return_probabilities: bool) -> Outgoing:
        fields = {
            "inputs": calls._sequence(inputs),
            "return_probabilities": return_probabilities or None,
        }
        return self._message(StepMessage, "step", fields)

    def generate(self, max_steps: int | None, options: Mapping[str, Any]) -> Outgoing:
        return self._message(GenerateMessage, "generate", {**options, "max_steps": max_steps})

    def _message(
        self, kind: type[StepMessage] | type[GenerateMessage], op: str, fields: dict[str, Any]
    ) -> Outgoing:
        number = next(self.numbers)
        envelope = {"op": op, "id": number, "idempotency_key": str(uuid.uuid4())}
        body = calls._body(kind, {**fields, **envelope})  # pydantic's ValidationError: not sent
        return Outgoing(number, json.dumps(body, separators=(",", ":")))


def answer(text: str | bytes, sent: Outgoing) -> StepResponse | ServiceError:
    """The answer to `sent`, or the error it was answered with (raised or retried by the
    caller); ProtocolError for anything else."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"a WebSocket answer that is not JSON: {text[:200]!r}") from exc
    if not isinstance(data, dict) or data.get("id") != sent.id:
        raise ProtocolError(f"a WebSocket answer to another message than {sent.id}: {text[:200]!r}")
    try:
        if "error" in data:
            error = SocketError.model_validate(data)
            headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
            detail = error.error
            return error_for(error.status, detail.code, detail.message, detail.field, headers)
        return StepResponse.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(f"a WebSocket answer that is not a StepResponse: {exc}") from exc


def retry_wait(policy: RetryPolicy, retried: int, error: ServiceError) -> float | None:
    """Seconds before sending again after an error answer; None: raise it."""
    if error.status not in RETRY_STATUSES or retried >= policy.retries:
        return None
    return policy.wait(retried + 1, httpx.Headers(error.headers))


def reconnect_wait(policy: RetryPolicy, retried: int, close_code: int | None) -> float | None:
    """Seconds before a new connection after one broke; None: give up."""
    if close_code in SESSION_GONE or retried >= policy.retries:
        return None
    return policy.wait(retried + 1)
