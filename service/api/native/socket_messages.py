"""The messages of a session's WebSocket (api/native/session_socket.py): a text message
read as a step or generate body (the wire models of service/wire/socket.py, refused with
the HTTP route's messages), and the HTTP answer's body written back with the message's id.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic_core
from pydantic import ValidationError

from service import errors as domain
from service.api.bodies.read import parse_bytes
from service.dataplane.idempotency import Answer, Idempotency, idempotency
from service.wire.native import GenerateRequest, StepRequest
from service.wire.socket import MAX_ID_LENGTH, MESSAGES, GenerateMessage, StepMessage

Body = TypeVar("Body", StepRequest, GenerateRequest)


def valid_step(raw: bytes) -> StepMessage | None:
    """The usual message, a valid step, parsed once; None for anything else, which is then
    read as JSON first (`read_json`, `validated`) so that the error names what is wrong."""
    try:
        return StepMessage.model_validate_json(raw)
    except ValidationError:
        return None


def read_json(raw: bytes) -> dict[str, Any]:
    try:
        data = pydantic_core.from_json(raw)
    except ValueError as exc:
        raise domain.InvalidInput(f"message: not valid JSON ({exc})", field="message") from None
    if not isinstance(data, dict):
        raise domain.InvalidInput(
            'message: expected a JSON object, e.g. {"op": "step", "inputs": [3]}',
            field="message",
        )
    return data


def id_of(data: dict[str, Any]) -> Any:
    """The id to echo: a string (at most MAX_ID_LENGTH characters), an integer, or none."""
    value = data.get("id")
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and len(value) <= MAX_ID_LENGTH:
        return value
    raise domain.InvalidInput(
        f"id: {domain.shown(value)} is not a string of at most {MAX_ID_LENGTH} characters "
        "or an integer",
        field="id",
    )


def validated(data: dict[str, Any], raw: bytes) -> StepMessage | GenerateMessage:
    op = data.get("op", "step")
    kind = MESSAGES.get(op) if isinstance(op, str) else None
    if kind is None:
        raise domain.InvalidInput(
            f"op: {domain.shown(op)} is not an operation; allowed: {', '.join(MESSAGES)}",
            field="op",
        )
    return parse_bytes(raw, kind)  # the HTTP body's checks and messages


def body_of(message: StepMessage | GenerateMessage, kind: type[Body]) -> Body:
    """The message without its envelope: the HTTP route's body, the same values."""
    values = {name: getattr(message, name) for name in kind.model_fields}
    return kind.model_construct(message.model_fields_set & values.keys(), **values)


def keyed(message: StepMessage | GenerateMessage, operation: str, body: Body) -> Idempotency | None:
    """The HTTP route's Idempotency-Key rule (the same fingerprint: a retry over HTTP of a
    message's change is recognised, and the other way round)."""
    if message.idempotency_key is None:
        return None
    try:
        return idempotency(message.idempotency_key, operation, body.model_dump_json().encode())
    except domain.InvalidInput as exc:
        text = exc.message.replace("Idempotency-Key", "idempotency_key")
        raise domain.InvalidInput(text, field="idempotency_key") from None


def with_id(answer: Answer, message_id: Any) -> str:
    """The HTTP answer's body, with the message's id (and the replay flag) in front."""
    body = answer.body.decode()
    head = ""
    if message_id is not None:
        head += f'"id":{json.dumps(message_id)},'
    if answer.replayed:
        head += '"replayed":true,'
    return "{" + head + body[1:] if head else body


def binary() -> domain.InvalidInput:
    return domain.InvalidInput(
        "message: a binary message; send each step as a JSON text message", field="message"
    )
