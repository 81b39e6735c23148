"""Session operations. Every change is load -> compute -> save under the session's lock,
so a failed request leaves the stored session exactly as it was."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np

from service.config import Settings
from service.dataplane.limits import check_length, check_max_steps, check_work
from service.dataplane.tokens import parse_states, read_ids, source_ids, to_text, to_tokens
from service.errors import Conflict, InvalidInput, NotFound, shown
from service.inference.base import LoadedModel
from service.inference.engine import Engines, RowResult
from service.inference.registry import Registry
from service.schemas import (
    CreateSessionRequest,
    GenerateRequest,
    SessionInfo,
    SetStateRequest,
    StepRequest,
    StepResponse,
)
from service.sessions.base import Session, SessionStore, corrupt_session, new_session_id


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def _not_found(session_id: str) -> NotFound:
    return NotFound(
        f"session {shown(session_id)} not found (unknown or expired)", field="session_id"
    )


def info(session: Session, include_state: bool = False) -> SessionInfo:
    return SessionInfo(
        session_id=session.id,
        model=session.model,
        version=str(session.version),
        steps=session.steps,
        created_at=_iso(session.created_at),
        expires_at=_iso(session.expires_at),
        state=[s.astype(float).tolist() for s in session.states] if include_state else None,
        memory=session.memory.astype(float).tolist()
        if include_state and session.memory is not None
        else None,
    )


def carried(session: Session) -> tuple[np.ndarray, ...]:
    """What the compute carries from step to step: the states, then the memory if any."""
    return session.states if session.memory is None else (*session.states, session.memory)


class SessionOps:
    def __init__(
        self, registry: Registry, engines: Engines, store: SessionStore, settings: Settings
    ):
        self.registry = registry
        self.engines = engines
        self.store = store
        self.settings = settings

    async def _open(self, session_id: str) -> tuple[Session, LoadedModel]:
        """The live session and its model; a record its model cannot use is refused
        here, before it could reach a batch shared with other sessions."""
        session = await self.store.get(session_id)
        if session is None:
            raise _not_found(session_id)
        try:
            model = self.registry.get(session.model, session.version)
        except NotFound as exc:
            raise NotFound(
                f"session {shown(session_id)} belongs to model '{session.model}' version "
                f"{session.version}, which this server does not serve ({exc.message})",
                field="session_id",
            ) from None
        spec = model.spec
        shapes = tuple(s.shape for s in session.states)
        card = spec.manifest.token_side.size
        if shapes != spec.state_shapes:
            problem = f"state shapes {shapes} do not match the model's {spec.state_shapes}"
        elif not spec.memory_fits(session.memory):
            got = None if session.memory is None else session.memory.shape
            problem = f"memory of shape {got} does not fit the model's {spec.memory_shape}"
        elif session.next_token is not None and not 0 <= session.next_token < card:
            problem = f"next token {session.next_token} is outside 0..{card - 1}"
        else:
            return session, model
        raise corrupt_session(session_id, problem)

    def _start_token(self, model: LoadedModel) -> int | None:
        return model.spec.manifest.start_id if model.spec.manifest.kind == "seq2seq" else None

    async def create(self, request: CreateSessionRequest) -> SessionInfo:
        model = self.registry.get(request.model, request.version)
        spec = model.spec
        if request.source is not None and request.state is not None:
            raise InvalidInput("give either 'source' or 'state', not both", field="source")
        memory = None
        if spec.memory_shape is not None and request.source is None:
            raise InvalidInput(
                f"source: required for '{spec.name}', whose decoder attends over the encoded "
                "source (give 'source'; a state alone is not enough)",
                field="source",
            )
        if request.state is not None:
            states = parse_states(spec, request.state)
        elif request.source is not None:
            if spec.manifest.kind != "seq2seq":
                raise InvalidInput(
                    f"source: '{spec.name}' is a step model with no encoder; omit 'source' "
                    "(the state starts at zeros) or give 'state'",
                    field="source",
                )
            ids = source_ids(spec.manifest, request.source, "source", self.settings)
            check_work(
                self.settings,
                steps=len(ids),
                what=f"{len(ids):,} source tokens",
                field="source",
                outputs=0,
                width=None,
            )
            encoded = await self.engines.get(model).encode(ids)
            states = encoded[: len(spec.state_shapes)]
            if spec.memory_shape is not None:
                memory = encoded[-1]
        else:
            states = tuple(s[0] for s in spec.zero_states(1))
        session = Session(
            id=new_session_id(),
            model=spec.name,
            version=spec.version,
            steps=0,
            states=states,
            next_token=self._start_token(model),
            created_at=time.time(),
            memory=memory,
        )
        return info(await self.store.create(session))

    async def get(self, session_id: str, include_state: bool) -> SessionInfo:
        session, _ = await self._open(session_id)
        return info(session, include_state)

    async def step(self, session_id: str, request: StepRequest) -> StepResponse:
        if not isinstance(request.inputs, str):  # text is checked once its model is known
            check_length(request.inputs, self.settings, "inputs")
        async with self.store.lock(session_id):
            session, model = await self._open(session_id)
            manifest = model.spec.manifest
            side = "target" if manifest.kind == "seq2seq" else "source"
            ids = read_ids(manifest.token_side, request.inputs, "inputs", side, self.settings)
            fed = len(ids)
            check_work(
                self.settings,
                steps=fed,
                what=f"{fed:,} input values",
                field="inputs",
                outputs=fed,
                width=manifest.output_cardinality if request.return_probabilities else None,
            )
            row = await self.engines.get(model).run(
                carried(session), ids, request.return_probabilities
            )
            return await self._advance(session, model, row)

    async def generate(self, session_id: str, request: GenerateRequest) -> StepResponse:
        async with self.store.lock(session_id):
            session, model = await self._open(session_id)
            manifest = model.spec.manifest
            steps = check_max_steps(request.max_steps, manifest.max_steps, self.settings)
            check_work(
                self.settings,
                steps=steps,
                what=f"max_steps {steps}",
                field="max_steps",
                outputs=steps,
                width=manifest.output_cardinality if request.return_probabilities else None,
            )
            if not manifest.feeds_back:
                raise InvalidInput(
                    f"'{model.spec.name}' outputs target tokens that are not among its inputs, "
                    "so generate cannot feed them back; use step",
                    field="session_id",
                )
            if session.next_token is None:
                raise Conflict(
                    f"session {shown(session_id)} has no previous output to feed back: step at "
                    "least one input first",
                    field="session_id",
                )
            row = await self.engines.get(model).generate(
                carried(session), session.next_token, steps, request.return_probabilities
            )
            return await self._advance(session, model, row)

    async def _advance(self, session: Session, model: LoadedModel, row: RowResult) -> StepResponse:
        saved = await self.store.save(
            replace(
                session,
                steps=session.steps + len(row.outputs),
                states=row.states[: len(session.states)],  # the memory does not change
                next_token=row.outputs[-1] if row.outputs else session.next_token,
            )
        )
        manifest = model.spec.manifest
        return StepResponse.model_construct(
            session_id=saved.id,
            outputs=to_tokens(manifest.target, row.outputs),
            steps=saved.steps,
            text=to_text(manifest, row.outputs),
            probabilities=row.probabilities,
        )

    async def set_state(self, session_id: str, request: SetStateRequest) -> SessionInfo:
        async with self.store.lock(session_id):
            session, model = await self._open(session_id)
            states = parse_states(model.spec, request.state)
            return info(await self.store.save(replace(session, states=states)), True)

    async def reset(self, session_id: str) -> SessionInfo:
        async with self.store.lock(session_id):
            session, model = await self._open(session_id)
            zeros = tuple(s[0] for s in model.spec.zero_states(1))
            return info(
                await self.store.save(
                    replace(session, states=zeros, steps=0, next_token=self._start_token(model))
                )
            )

    async def delete(self, session_id: str) -> None:
        async with self.store.lock(session_id):
            if not await self.store.delete(session_id):
                raise _not_found(session_id)
