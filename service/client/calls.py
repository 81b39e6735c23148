"""What each client method sends: method, path, body and headers, with the body built by
the server's own wire models, so a request they refuse fails before it is sent. Shared by
the synchronous and the asynchronous client: only their I/O differs."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from service import __version__
from service.client.errors import ProtocolError
from service.wire.native import (
    CreateSessionRequest,
    GenerateRequest,
    PredictRequest,
    SessionInfo,
    SetStateRequest,
    StepRequest,
    StepResponse,
)

Answer = TypeVar("Answer", bound=BaseModel)
Token = int | str
Tokens = Sequence[Token] | str  # one sequence: token ids or vocabulary strings, or text
IDEMPOTENCY_HEADER = "Idempotency-Key"  # service/api/native/sessions.py IDEMPOTENCY_KEY


@dataclass(frozen=True)
class Call:
    """One request, sent once or, on a retry, again exactly as it is (the same key too)."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    # may it be sent again when an attempt may have reached the server (its answer lost)?
    resend_safe: bool = True
    # a 404 after such an attempt means that attempt was applied (a delete)
    missing_is_done: bool = False

    @property
    def headers(self) -> dict[str, str]:
        return {IDEMPOTENCY_HEADER: self.idempotency_key} if self.idempotency_key else {}


def headers(api_key: str | None) -> dict[str, str]:
    """Sent with every request (service/api/middleware/auth.py accepts `Authorization: Bearer`)."""
    sent = {"User-Agent": f"seq2seq-serving-client/{__version__}"}
    if api_key is not None:
        sent["Authorization"] = f"Bearer {api_key}"
    return sent


def parse(answer: type[Answer], content: bytes, call: Call) -> Answer:
    try:
        return answer.model_validate_json(content)
    except ValidationError as exc:
        raise ProtocolError(
            f"{call.method} {call.path}: the answer is not a {answer.__name__}: {exc}"
        ) from exc


def _segment(value: object) -> str:
    return quote(str(value), safe="")


def _sequence(tokens: Tokens) -> list[Token] | str:
    return tokens if isinstance(tokens, str) else list(tokens)


def _tensors(state: Sequence[Any]) -> list[Any]:
    """State tensors as nested lists (numpy arrays welcome: their `tolist()`)."""
    return [t.tolist() if hasattr(t, "tolist") else t for t in state]


def _body(model: type[BaseModel], fields: Mapping[str, Any]) -> dict[str, Any]:
    """The body as the wire model validates it (raises pydantic's ValidationError),
    without the fields left to the server's defaults."""
    given = {name: value for name, value in fields.items() if value is not None}
    return model.model_validate(given).model_dump(mode="json", exclude_unset=True)


def _new_key() -> str:
    return str(uuid.uuid4())


def models() -> Call:
    return Call("GET", "/v1/models")


def model(name: str, version: int | str | None) -> Call:
    path = f"/v1/models/{_segment(name)}"
    return Call("GET", path if version is None else f"{path}/versions/{_segment(version)}")


def predict(
    inputs: Sequence[Tokens],
    model: str | None,
    version: int | str | None,
    options: Mapping[str, Any],
    stream: bool = False,
) -> Call:
    """POST /predict: the model and version in the body. Safe to send again (it changes
    nothing; a `sample` without a seed draws anew)."""
    if isinstance(inputs, str):
        raise TypeError("inputs is a batch of sequences: [text] for one text")
    fields = {
        **options,
        "model": model,
        "version": version,
        "inputs": [_sequence(x) for x in inputs],
        "stream": stream or None,
    }
    return Call("POST", "/predict", _body(PredictRequest, fields))


def create_session(
    model: str, source: Tokens | None, state: Sequence[Any] | None, version: int | str | None
) -> Call:
    """Not sent again once an attempt may have reached the server: creating has no
    Idempotency-Key, so a second attempt could leave a session nobody knows of until it
    expires. Sent again after a 429 or 503 (nothing was created) or when the connection
    could not be opened (nothing was sent)."""
    fields = {
        "model": model,
        "version": version,
        "source": None if source is None else _sequence(source),
        "state": None if state is None else _tensors(state),
    }
    return Call("POST", "/v1/sessions", _body(CreateSessionRequest, fields), resend_safe=False)


def _session(session_id: str, tail: str = "") -> str:
    return f"/v1/sessions/{_segment(session_id)}{tail}"


def session_info(session_id: str, include_state: bool) -> Call:
    params = {"include_state": "true"} if include_state else {}
    return Call("GET", _session(session_id), params=params)


def step(session_id: str, inputs: Tokens, return_probabilities: bool) -> Call:
    fields = {"inputs": _sequence(inputs), "return_probabilities": return_probabilities or None}
    body = _body(StepRequest, fields)
    return Call("POST", _session(session_id, "/step"), body, idempotency_key=_new_key())


def generate(
    session_id: str, max_steps: int | None, options: Mapping[str, Any], stream: bool = False
) -> Call:
    """Streamed, without an Idempotency-Key (the server refuses one: a stream cannot be
    replayed), so not sent again once an attempt may have reached the server; still sent
    again after a 429 or 503 (nothing applied) or when the connection could not be opened."""
    fields = {**options, "max_steps": max_steps, "stream": stream or None}
    body = _body(GenerateRequest, fields)
    path = _session(session_id, "/generate")
    if stream:
        return Call("POST", path, body, resend_safe=False)
    return Call("POST", path, body, idempotency_key=_new_key())


def set_state(session_id: str, state: Sequence[Any]) -> Call:
    body = _body(SetStateRequest, {"state": _tensors(state)})
    return Call("PUT", _session(session_id, "/state"), body, idempotency_key=_new_key())


def reset(session_id: str) -> Call:
    return Call("POST", _session(session_id, "/reset"), idempotency_key=_new_key())


def delete(session_id: str) -> Call:
    """Sent again after a lost answer too: the second attempt then finds nothing (404),
    which means the first one deleted it."""
    return Call("DELETE", _session(session_id), missing_is_done=True)


def stepped(info: SessionInfo, answer: StepResponse) -> SessionInfo:
    """The session's info after a step or generate (whose answer counts its steps)."""
    return info.model_copy(update={"steps": answer.steps})
