"""Triton's sequence extension as sessions: a sequence is a session whose id is derived
from the API key, the model and the client's sequence id, kept in the session store
(Redis too) like any other, with the same locks, limits and expiry."""

from __future__ import annotations

import base64
import contextlib
import hashlib

from service.dataplane.limits import decode_steps
from service.dataplane.session_ops import SessionOps
from service.dataplane.tokens import TokensIn
from service.errors import InvalidInput, NotFound, ServiceError, shown
from service.inference.model.interface import LoadedModel
from service.wire.native import CreateSessionRequest, GenerateRequest, StepRequest, StepResponse
from service.wire.oip import RequestParameters


def sequence_session_id(owner: str | None, model: str, sequence_id: int | str) -> str:
    """The session that holds a sequence: derived from who asks, the model and the id
    (so one key's sequence 1 is never another key's, nor another model's)."""
    key = f"{owner or ''}\0{model}\0{type(sequence_id).__name__}:{sequence_id}"
    digest = hashlib.sha256(key.encode()).digest()[:24]
    return "seq-" + base64.urlsafe_b64encode(digest).decode()


async def sequence_step(
    sessions: SessionOps,
    model: LoadedModel,
    params: RequestParameters,
    sequence_id: int | str,
    rows: list[TokensIn],
    probs: bool,
    owner: str | None,
) -> StepResponse:
    """One request of a sequence. The session behind it is never named to the client:
    an error about it speaks of the sequence, and a sequence ended (or expired) under a
    request, by a concurrent one with sequence_end, is the documented 400."""
    session_id = sequence_session_id(owner, model.spec.name, sequence_id)
    try:
        return await _step(sessions, model, params, session_id, sequence_id, rows, probs, owner)
    except ServiceError as exc:
        if isinstance(exc, NotFound) and exc.field == "session_id":
            raise _not_started(sequence_id, model.spec.name) from None
        if session_id in exc.message:
            exc.message = exc.message.replace(
                f"session {shown(session_id)}", f"sequence {shown(sequence_id)}"
            ).replace(session_id, "the sequence")
            exc.args = (exc.message,)
            exc.field = "parameters.sequence_id"
        raise


def _not_started(sequence_id: int | str, model: str) -> InvalidInput:
    return InvalidInput(
        f"parameters.sequence_id: sequence {shown(sequence_id)} of model '{model}' has not "
        "started or has ended (or expired); start it with parameters.sequence_start=true",
        field="parameters.sequence_id",
    )


async def _step(
    sessions: SessionOps,
    model: LoadedModel,
    params: RequestParameters,
    session_id: str,
    sequence_id: int | str,
    rows: list[TokensIn],
    probs: bool,
    owner: str | None,
) -> StepResponse:
    spec = model.spec
    seq2seq = spec.manifest.kind == "seq2seq"
    if len(rows) > 1:
        raise InvalidInput(
            f"inputs: a sequence takes one row per request (batch 1), got {len(rows)}",
            field="inputs",
        )
    row = rows[0] if rows else None
    if params.max_steps is not None:  # checked even where it is not used (a step given)
        decode_steps(spec, params.max_steps, sessions.settings)
    if params.sequence_start:
        source = row if seq2seq else None
        create = CreateSessionRequest.model_construct(
            model=spec.name, version=spec.version, source=source, state=None
        )
        await sessions.create(create, owner, session_id)
        if seq2seq:
            row = None  # the source was encoded; decode from the start token
    else:
        info = await sessions.get(session_id, False, owner)
        if info.version != str(spec.version):
            raise InvalidInput(
                f"sequence {shown(sequence_id)} runs on version {info.version} of "
                f"'{spec.name}', not {spec.version}; send it to that version, or start anew",
                field="parameters.sequence_id",
            )
    if row is not None:
        answer = await sessions.step(
            session_id, StepRequest.model_construct(inputs=row, return_probabilities=probs), owner
        )
    elif seq2seq:
        generate = GenerateRequest.model_construct(
            max_steps=params.max_steps, return_probabilities=probs
        )
        answer = await sessions.generate(session_id, generate, owner)
    else:
        raise InvalidInput(
            f"inputs: '{spec.name}' steps the sequence by its 'tokens'; give them", field="inputs"
        )
    if params.sequence_end:
        with contextlib.suppress(NotFound):  # ended by a concurrent request
            await sessions.delete(session_id, owner)
    return answer.parsed(StepResponse)
