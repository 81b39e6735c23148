"""Streamed decoding: a `token` event per decoded token as soon as it is chosen, then a
`result` event with the whole answer (what the same request answers unstreamed).

Greedy and sampled decodes run one batched decoder step per token (a sampled row
continues its stream at the step's offset, so the tokens equal the unstreamed ones);
beam search needs every step before its best hypothesis is known, so it sends only the
result. Checks run before the first event, so a bad request is an ordinary error answer.

Sessions: the stream holds the session's lock. After every event the consumer asks for
the next one only once the event was sent, so when the client goes away the session is
saved as it stood after the last token sent, and `steps` counts the tokens applied.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Literal

import anyio
import numpy as np
from pydantic import BaseModel

from service.dataplane.predict import Predicted, Predictor, prepare, response
from service.dataplane.session_info import advanced, carried
from service.dataplane.session_ops import SessionOps
from service.dataplane.session_rules import generation
from service.dataplane.strategies import Plan
from service.dataplane.tokens import to_text, to_tokens
from service.errors import InvalidInput
from service.inference.model.interface import Decoding, LoadedModel
from service.inference.serving.decoding import Hypothesis, RowDecoded
from service.inference.serving.engine import ModelEngine
from service.sessions.store import StoredSession
from service.wire.decoding import TokenEvent
from service.wire.native import GenerateRequest, PredictRequest

Alive = Callable[[], bool]  # False once the client has gone


@dataclass(frozen=True)
class Event:
    name: Literal["token", "result"]
    data: BaseModel


class _Tokens:
    """The tokens streamed so far, as one row's result."""

    def __init__(self, model: LoadedModel, plan: Plan):
        self.model = model
        self.plan = plan
        self.ids: list[int] = []
        self.scores: list[float] = []
        self.probabilities: list[list[float]] = []
        self.text = ""  # of the tokens so far, with a tokenizer

    def add(self, row: RowDecoded) -> Event:
        """Take one decoded step; its event."""
        token, score = row.outputs[0], row.hypotheses[0].step_scores[0]
        self.ids.append(token)
        self.scores.append(score)
        if row.probabilities is not None:
            self.probabilities.extend(row.probabilities)
        manifest = self.model.spec.manifest
        text = to_text(manifest, self.ids)  # the pieces add up to the answer's text
        piece = None if text is None else text[len(self.text) :]
        self.text = text or ""
        side = manifest.target
        event = TokenEvent(
            index=len(self.ids) - 1,
            token=to_tokens(side, [token])[0],
            text=piece,
            score=score if self.plan.step_scores else None,
        )
        return Event("token", event)

    def row(self, asked: bool, states: tuple[np.ndarray, ...] = ()) -> RowDecoded:
        hypothesis = Hypothesis(self.ids, float(sum(self.scores)), self.scores)
        return RowDecoded([hypothesis], self.probabilities if asked else None, states)

    def ended(self) -> bool:
        end = self.model.spec.manifest.end_id
        return end is not None and self.ids[-1] == end


def _one_input(request: PredictRequest) -> None:
    if len(request.inputs) != 1:
        raise InvalidInput(
            f"inputs: a streamed request decodes one input; got {len(request.inputs)} (send "
            "one per request, or omit stream)",
            field="inputs",
        )


async def _step(
    engine: ModelEngine,
    states: tuple[np.ndarray, ...],
    token: int,
    probs: bool,
    decoding: Decoding,
    offset: int,
) -> RowDecoded:
    """One decoder step of a row; a sampled row draws at its stream's `offset`."""
    return await engine.generate(states, token, 1, probs, replace(decoding, offset=offset))


async def stream_predict(
    predictor: Predictor,
    name: str | None,
    version: int | str | None,
    request: PredictRequest,
    alive: Alive,
) -> AsyncIterator[Event]:
    model = predictor.model(name, version)
    _one_input(request)
    probs = request.return_probabilities
    ready = prepare(
        model, request.inputs, request.max_steps, probs, predictor.settings, "inputs", request
    )
    engine = predictor.engines.get(model)
    plan, job = ready.plan, ready.job
    if plan.decoding.strategy == "beam":
        rows = await engine.predict(job, probs)
        yield Event("result", response(Predicted(model, rows, plan, probs), request.inputs))
        return
    sequence, decoding = job.sequences[0], job.decoding[0]
    streamed = _Tokens(model, plan)
    if model.spec.manifest.kind == "seq2seq":
        states = await engine.encode(sequence)
        token = model.spec.manifest.start_id or 0
        for t in range(job.max_steps):
            if not alive():
                return
            row = await _step(engine, states, token, probs, decoding, t)
            states, token = row.states, row.outputs[0]
            yield streamed.add(row)
            if streamed.ended():
                break
    else:  # a step model: each input value in turn, from a zero state
        states = tuple(s[0] for s in model.spec.zero_states(1))
        for value in sequence:
            if not alive():
                return
            row = await engine.run(states, [value], probs)
            states = row.states
            yield streamed.add(row)
    decoded = Predicted(model, [streamed.row(probs)], plan, probs)
    yield Event("result", response(decoded, request.inputs))


async def stream_generate(
    ops: SessionOps,
    session_id: str,
    request: GenerateRequest,
    owner: str | None,
    alive: Alive,
) -> AsyncIterator[Event]:
    async with ops.store.lock(session_id):
        session, model = await ops.open(session_id, owner)
        steps, plan = generation(session, model, request, ops.settings)
        engine = ops.engines.get(model)
        probs = request.return_probabilities
        decoding = replace(plan.rows(1)[0], offset=session.steps)  # as unstreamed
        token = session.next_token or 0
        if plan.decoding.strategy == "beam":
            row = await engine.generate(
                ops.carried(session, model), token, steps, probs, decoding, plan.returned
            )
            changed, answer = advanced(session, model, row, plan)
            ops.kv.keep(await ops.store.save(changed), row.states)
            yield Event("result", answer)
            return
        streamed = _Tokens(model, plan)
        applied: StoredSession = session  # the state after the last token sent
        states = ops.carried(session, model)  # applied's, with any key/value caches
        saved = False
        try:
            for t in range(steps):
                if not alive():
                    break
                offset = decoding.offset + t
                row = await _step(engine, states, token, probs, decoding, offset)
                candidate, _ = advanced(applied, model, row)
                yield streamed.add(row)
                applied, token, states = candidate, row.outputs[0], row.states
                if streamed.ended():
                    break
            if not alive():
                return  # the finally clause saves what was sent
            changed, answer = advanced(session, model, streamed.row(probs, carried(applied)), plan)
            ops.kv.keep(await ops.store.save(changed), states)
            saved = True
            yield Event("result", answer)
        finally:
            if not saved and applied is not session:
                with anyio.CancelScope(shield=True):
                    await ops.store.save(applied)
