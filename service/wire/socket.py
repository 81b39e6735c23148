"""The messages of session steps over a WebSocket (GET /v1/sessions/{id}/ws).

A message is the body of `POST /v1/sessions/{id}/step` or `/generate`, with three more
fields: `op` (which of the two; default "step"), `id` (any string or integer, echoed in
the answer) and `idempotency_key` (the Idempotency-Key header's rule, per message). The
answer is the HTTP answer's body with `id` (and `"replayed": true` for a replay); an
error is the HTTP error body with `id` and `status`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictInt, StrictStr

from service.wire.native import ErrorDetail, GenerateRequest, Request, StepRequest

Operation = Literal["step", "generate"]
MAX_ID_LENGTH = 255
MessageId = Annotated[StrictStr, Field(max_length=MAX_ID_LENGTH)] | StrictInt


class _Envelope(Request):
    op: Operation = Field(default="step", description="which session change: step or generate")
    id: MessageId | None = Field(
        default=None, description="echoed in the answer (a string of at most 255 characters)"
    )
    idempotency_key: StrictStr | None = Field(
        default=None,
        description="as the Idempotency-Key header: a retry with the same key gets the first "
        "answer and applies nothing again",
    )


class StepMessage(StepRequest, _Envelope):
    """`{"op": "step", "inputs": [...]}`: a step body and the envelope's fields."""

    op: Literal["step"] = "step"


class GenerateMessage(GenerateRequest, _Envelope):
    """`{"op": "generate", "max_steps": 3}`: a generate body and the envelope's fields."""

    op: Literal["generate"] = "generate"


SocketMessage = StepMessage | GenerateMessage
MESSAGES: dict[str, type[StepMessage] | type[GenerateMessage]] = {
    "step": StepMessage,
    "generate": GenerateMessage,
}
ENVELOPE_FIELDS = frozenset(_Envelope.model_fields)


class SocketError(BaseModel):
    """An error answer to one message: the HTTP error body, its status, the message's id."""

    id: MessageId | None = None
    status: int
    error: ErrorDetail
    retry_after: int | None = Field(
        default=None, description="seconds to wait before sending it again (HTTP: Retry-After)"
    )
