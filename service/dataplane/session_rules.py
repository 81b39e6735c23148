"""The rules a session change checks before it computes: a stored record its model can
use, and what a generate may do (steps and plan within the limits, a model that feeds
its outputs back, a token to feed)."""

from __future__ import annotations

from service.config import Settings
from service.dataplane import strategies
from service.dataplane.limits import check_max_steps, check_work
from service.dataplane.strategies import Plan
from service.dataplane.tokens import prefix_problem
from service.errors import Conflict, InvalidInput, shown
from service.inference.model.interface import LoadedModel, ModelSpec
from service.sessions.store import StoredSession
from service.wire.native import CreateSessionRequest, GenerateRequest


def check_start(spec: ModelSpec, request: CreateSessionRequest) -> None:
    """What a new session may start from: a source (seq2seq models), a state, or
    neither (zeros); a decoder that attends over the encoded source needs the source."""
    if request.source is not None and request.state is not None:
        raise InvalidInput("give either 'source' or 'state', not both", field="source")
    if spec.memory_shape is not None and request.source is None:
        raise InvalidInput(
            f"source: required for '{spec.name}', whose decoder attends over the encoded "
            "source (give 'source'; a state alone is not enough)",
            field="source",
        )
    if request.source is not None and spec.manifest.kind != "seq2seq":
        raise InvalidInput(
            f"source: '{spec.name}' is a step model with no encoder; omit 'source' "
            "(the state starts at zeros) or give 'state'",
            field="source",
        )


def unusable(session: StoredSession, model: LoadedModel) -> str | None:
    """Why a stored record cannot be used with its model (None: it can): refused before
    it could reach a batch shared with other sessions."""
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
    elif bad := prefix_problem(spec, session.states):
        problem = bad
    else:
        return None
    return problem


def check_room(spec: ModelSpec, session: StoredSession, fed: int, field: str) -> None:
    """A Transformer decoder reads at most its window of target tokens: a session cannot
    be fed past it (reset it, or start a new one)."""
    room = spec.room(session.states)
    if room is not None and fed > room:
        raise InvalidInput(
            f"{field}: {fed} more tokens would pass the {spec.window} target positions "
            f"'{spec.name}' reads (its Transformer decoder's window); {room} left in this "
            "session: reset it to start again",
            field=field,
        )


def generation(
    session: StoredSession, model: LoadedModel, request: GenerateRequest, settings: Settings
) -> tuple[int, Plan]:
    """The checks before a session generates: steps and plan within the limits, a
    model that feeds its outputs back, a token to feed."""
    manifest = model.spec.manifest
    steps = check_max_steps(request.max_steps, manifest.max_steps, settings)
    check_room(model.spec, session, steps, "max_steps")
    plan = strategies.plan(request, model, settings, request.return_probabilities)
    check_work(
        settings,
        steps=steps * plan.width,
        what=f"max_steps {steps}{plan.width_note}",
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
            f"session {shown(session.id)} has no previous output to feed back: step at "
            "least one input first",
            field="session_id",
        )
    return steps, plan
