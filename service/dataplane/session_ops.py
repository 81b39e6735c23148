"""Session operations. Every change is load -> compute -> save under the session's lock,
so a failed request leaves the stored session exactly as it was."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import numpy as np
from pydantic import BaseModel

from service.config import Settings
from service.dataplane.idempotency import Answer, Idempotency, not_kept, reused
from service.dataplane.kv_sessions import KvSessions
from service.dataplane.limits import check_length, check_work
from service.dataplane.model_info import kv_cache
from service.dataplane.session_info import advanced, carried, info, not_found
from service.dataplane.session_rules import check_room, check_start, generation, unusable
from service.dataplane.tokens import parse_states, read_ids, source_ids
from service.errors import NotFound, VersionGone, shown
from service.inference.model.interface import LoadedModel
from service.inference.model.registry import Registry
from service.inference.serving.engine import Engines
from service.observability.request_context import note_model
from service.sessions.store import (
    Replay,
    SessionStore,
    StoredSession,
    corrupt_session,
    new_session_id,
)
from service.wire.native import (
    CreateSessionRequest,
    GenerateRequest,
    SessionInfo,
    SetStateRequest,
    StepRequest,
)

States = tuple[np.ndarray, ...]
# a change to a session: its new value, the answer to send, and the states its
# computation ended with (None: no computation), which kv_sessions.py may keep
Changed = tuple[StoredSession, BaseModel, States | None]
Change = Callable[[StoredSession, LoadedModel], Awaitable[Changed]]


class SessionOps:
    def __init__(
        self,
        registry: Registry,
        engines: Engines,
        store: SessionStore,
        settings: Settings,
        kv: KvSessions | None = None,
    ):
        self.registry = registry
        self.engines = engines
        self.store = store
        self.settings = settings
        self.kv = kv if kv is not None else KvSessions(settings.session_kv_cache_mb * 2**20)

    def carried(self, session: StoredSession, model: LoadedModel) -> States:
        """What a request on `session` starts from: with a Transformer decoder's key/value
        cache, the extended states this process kept from the session's last request
        (kv_sessions.py), if it has them."""
        return self.kv.carried(session) if kv_cache(model)[0] else carried(session)

    async def open(self, session_id: str, owner: str | None) -> tuple[StoredSession, LoadedModel]:
        """The live session and its model; a record its model cannot use is refused
        here, before it could reach a batch shared with other sessions. Another key's
        session is "not found": its existence is not revealed."""
        session = await self.store.get(session_id)
        if session is None or (owner is not None and session.owner != owner):
            raise not_found(session_id)
        try:
            model = self.registry.get(session.model, session.version)
            note_model(model.spec.name)
        except NotFound as exc:
            raise VersionGone(
                f"session {shown(session_id)} belongs to model '{session.model}' version "
                f"{session.version}, which this server no longer serves ({exc.message}); "
                "delete it and create a new session",
                field="session_id",
            ) from None
        problem = unusable(session, model)
        if problem is None:
            return session, model
        raise corrupt_session(session_id, problem)

    def _start_token(self, model: LoadedModel) -> int | None:
        return model.spec.manifest.start_id if model.spec.manifest.kind == "seq2seq" else None

    async def _change(
        self,
        session_id: str,
        owner: str | None,
        idempotent: Idempotency | None,
        apply: Change,
    ) -> Answer:
        """Load, compute, save under the session's lock. With an Idempotency-Key, a key
        already answered on this session gets that answer again and nothing is applied;
        otherwise the answer is stored in the same atomic save as the change (or, over
        the byte budget, only its marker: a retry then gets 409, nothing applied). The
        states the computation ended with are kept for the session's next request once
        the save succeeded (kv_sessions.py)."""
        async with self.store.lock(session_id):
            session, model = await self.open(session_id, owner)
            if idempotent is not None:
                earlier = await self.store.replay(session_id, idempotent.key)
                if earlier is not None:
                    if earlier.fingerprint != idempotent.fingerprint:
                        raise reused(idempotent.key)
                    if not earlier.kept:  # applied, its answer over the byte budget
                        budget = self.settings.idempotency_max_bytes_per_session
                        raise not_kept(idempotent.key, budget)
                    return Answer(earlier.body, replayed=True)
            changed, response, ended = await apply(session, model)
            body = response.model_dump_json(exclude_none=True).encode()
            remember = None
            if idempotent is not None:
                remember = (idempotent.key, Replay(idempotent.fingerprint, body))
            saved = await self.store.save(changed, remember)
            if ended is not None:
                self.kv.keep(saved, ended)
            else:  # its prefix changed without a computation: any kept caches are stale
                self.kv.forget(session_id)
            return Answer(body, response)

    async def create(
        self,
        request: CreateSessionRequest,
        owner: str | None = None,
        session_id: str | None = None,
    ) -> SessionInfo:
        """A new session. `session_id`: under that id, replacing any session there
        (the Open Inference Protocol's sequence start; the id is derived from the
        owner, so it never replaces another key's session)."""
        model = self.registry.get(request.model, request.version)
        note_model(model.spec.name)
        spec = model.spec
        check_start(spec, request)
        memory = None
        if request.state is not None:
            states = parse_states(spec, request.state)
        elif request.source is not None:
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
        session = StoredSession(
            id=session_id or new_session_id(),
            model=spec.name,
            version=spec.version,
            steps=0,
            states=states,
            next_token=self._start_token(model),
            created_at=time.time(),
            memory=memory,
            owner=owner,
        )
        if session_id is None:
            return info(await self.store.create(session))
        async with self.store.lock(session_id):
            await self.store.delete(session_id, owner)
            return info(await self.store.create(session, named=True))

    async def get(
        self, session_id: str, include_state: bool, owner: str | None = None
    ) -> SessionInfo:
        session, _ = await self.open(session_id, owner)
        return info(session, include_state)

    async def step(
        self,
        session_id: str,
        request: StepRequest,
        owner: str | None = None,
        idempotent: Idempotency | None = None,
    ) -> Answer:
        if not isinstance(request.inputs, str):  # text is checked once its model is known
            check_length(request.inputs, self.settings, "inputs")

        async def apply(session: StoredSession, model: LoadedModel) -> Changed:
            manifest = model.spec.manifest
            side = "target" if manifest.kind == "seq2seq" else "source"
            ids = read_ids(manifest.token_side, request.inputs, "inputs", side, self.settings)
            fed = len(ids)
            check_room(model.spec, session, fed, "inputs")
            check_work(
                self.settings,
                steps=fed,
                what=f"{fed:,} input values",
                field="inputs",
                outputs=fed,
                width=manifest.output_cardinality if request.return_probabilities else None,
            )
            row = await self.engines.get(model).run(
                self.carried(session, model), ids, request.return_probabilities
            )
            return (*advanced(session, model, row), row.states)

        return await self._change(session_id, owner, idempotent, apply)

    async def generate(
        self,
        session_id: str,
        request: GenerateRequest,
        owner: str | None = None,
        idempotent: Idempotency | None = None,
    ) -> Answer:
        async def apply(session: StoredSession, model: LoadedModel) -> Changed:
            steps, plan = generation(session, model, request, self.settings)
            row = await self.engines.get(model).generate(
                self.carried(session, model),
                session.next_token or 0,
                steps,
                request.return_probabilities,
                # a sampled session continues one stream across generate calls
                replace(plan.rows(1)[0], offset=session.steps),
                plan.returned,
            )
            return (*advanced(session, model, row, plan), row.states)

        return await self._change(session_id, owner, idempotent, apply)

    async def set_state(
        self,
        session_id: str,
        request: SetStateRequest,
        owner: str | None = None,
        idempotent: Idempotency | None = None,
    ) -> Answer:
        async def apply(session: StoredSession, model: LoadedModel) -> Changed:
            changed = session.evolve(states=parse_states(model.spec, request.state))
            return changed, self._info_after_save(changed, include_state=True), None

        return await self._change(session_id, owner, idempotent, apply)

    async def reset(
        self, session_id: str, owner: str | None = None, idempotent: Idempotency | None = None
    ) -> Answer:
        async def apply(session: StoredSession, model: LoadedModel) -> Changed:
            zeros = tuple(s[0] for s in model.spec.zero_states(1))
            changed = session.evolve(states=zeros, steps=0, next_token=self._start_token(model))
            return changed, self._info_after_save(changed), None

        return await self._change(session_id, owner, idempotent, apply)

    def _info_after_save(self, changed: StoredSession, include_state: bool = False) -> SessionInfo:
        """The answer is made before the save (to be stored with it): the expiry is the
        one the save is about to set."""
        return info(changed.evolve(expires_at=self.store.expiry()), include_state)

    async def delete(self, session_id: str, owner: str | None = None) -> None:
        async with self.store.lock(session_id):
            session_owner = None
            if owner is not None:  # only the owner may delete (a corrupt record: 410)
                session = await self.store.get(session_id)
                if session is None or session.owner != owner:
                    raise not_found(session_id)
                session_owner = session.owner
            self.kv.forget(session_id)
            if not await self.store.delete(session_id, session_owner):
                raise not_found(session_id)
