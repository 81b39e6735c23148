"""A streamed decode's server-sent events, as typed objects: a `TokenEvent` for each
`token` event, then the whole answer (the `result` event); an `error` event raises the
typed error. Shared by both clients: only how the events are read differs."""

from __future__ import annotations

from typing import Generic

import httpx
from pydantic import ValidationError

from service.client.calls import Answer
from service.client.errors import ProtocolError, from_event
from service.wire.decoding import TokenEvent
from service.wire.native import PredictResponse, StepResponse

PredictEvent = TokenEvent | PredictResponse
StepEvent = TokenEvent | StepResponse


def is_event_stream(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.partition(";")[0].strip().lower() == "text/event-stream"


class EventReader(Generic[Answer]):
    def __init__(self, answer: type[Answer]) -> None:
        self.answer = answer
        self.done = False

    def read(self, event: str, data: str) -> TokenEvent | Answer | None:
        """The typed event, or None for one that carries nothing for the client."""
        if self.done:
            return None
        try:
            if event == "token":
                return TokenEvent.model_validate_json(data)
            if event == "result":
                self.done = True
                return self.answer.model_validate_json(data)
        except ValidationError as exc:
            raise ProtocolError(f"a {event} event that does not fit its schema: {exc}") from exc
        if event == "error":
            raise from_event(data)
        return None  # keep-alive comments, events of a newer server

    def whole(self, content: bytes) -> Answer:
        """A 200 answer that is not a stream: the result alone (e.g. an Idempotency-Key's
        replayed answer)."""
        self.done = True
        try:
            return self.answer.model_validate_json(content)
        except ValidationError as exc:
            raise ProtocolError(f"an answer that is not a {self.answer.__name__}") from exc

    def end(self) -> None:
        if not self.done:
            raise ProtocolError("the stream ended before its result")
