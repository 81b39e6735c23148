"""How a session is shown to clients, and what a step computes from it."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from service.dataplane.strategies import Plan, scored
from service.dataplane.tokens import to_text, to_tokens
from service.errors import NotFound, shown
from service.inference.model.interface import LoadedModel
from service.inference.serving.decoding import RowDecoded
from service.sessions.store import StoredSession
from service.wire.native import SessionInfo, StepResponse


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def not_found(session_id: str) -> NotFound:
    return NotFound(
        f"session {shown(session_id)} not found (unknown or expired)", field="session_id"
    )


def info(session: StoredSession, include_state: bool = False) -> SessionInfo:
    return SessionInfo(
        session_id=session.id,
        model=session.model,
        version=str(session.version),
        steps=session.steps,
        created_at=iso(session.created_at),
        expires_at=iso(session.expires_at),
        state=[s.astype(float).tolist() for s in session.states] if include_state else None,
        memory=session.memory.astype(float).tolist()
        if include_state and session.memory is not None
        else None,
    )


def carried(session: StoredSession) -> tuple[np.ndarray, ...]:
    """What the compute carries from step to step: the states, then the memory if any."""
    return session.states if session.memory is None else (*session.states, session.memory)


def advanced(
    session: StoredSession, model: LoadedModel, row: RowDecoded, plan: Plan | None = None
) -> tuple[StoredSession, StepResponse]:
    """The session after `row`'s first (best) hypothesis, and the answer."""
    changed = session.evolve(
        steps=session.steps + len(row.outputs),
        states=row.states[: len(session.states)],  # the memory does not change
        next_token=row.outputs[-1] if row.outputs else session.next_token,
    )
    manifest = model.spec.manifest
    response = StepResponse.model_construct(
        session_id=changed.id,
        outputs=to_tokens(manifest.target, row.outputs),
        steps=changed.steps,
        text=to_text(manifest, row.outputs),
        probabilities=row.probabilities,
    )
    if plan is not None:
        extra = scored(plan, [row])
        if extra.sequences is not None:
            response.sequences = [to_tokens(manifest.target, s) for s in extra.sequences[0]]
        response.scores = extra.scores[0] if extra.scores is not None else None
        response.step_scores = extra.step_scores[0] if extra.step_scores is not None else None
        response.seed = plan.seed
    return changed, response
