"""Batch decoding for seq2seq models, zero-state step runs for step models: one rule set
for every protocol (the native API, the Open Inference Protocol, TF Serving's REST)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.config import Settings
from service.dataplane import strategies
from service.dataplane.limits import check_batch, check_work, decode_steps
from service.dataplane.strategies import Plan
from service.dataplane.tokens import TokensIn, source_ids, to_text, to_tokens
from service.inference.model.interface import LoadedModel
from service.inference.model.registry import Registry
from service.inference.serving.decoding import RowDecoded
from service.inference.serving.engine import Engines, PredictJob
from service.observability.request_context import note_model
from service.wire.decoding import DecodingOptions
from service.wire.native import PredictRequest, PredictResponse, Token

GREEDY_OPTIONS = DecodingOptions()


@dataclass(frozen=True)
class Predicted:
    """What a model answered for a batch: per input, its hypotheses (best first; rows
    may differ in length: a seq2seq row ends at the end token), and how it was decoded."""

    model: LoadedModel
    rows: list[RowDecoded]
    plan: Plan
    probabilities_asked: bool

    @property
    def ids(self) -> list[list[int]]:
        """Each input's best output."""
        return [row.outputs for row in self.rows]

    @property
    def probabilities(self) -> list[list[list[float]]] | None:
        if not self.probabilities_asked:
            return None
        return [row.probabilities or [] for row in self.rows]


class Predictor:
    def __init__(self, registry: Registry, engines: Engines, settings: Settings):
        self.registry = registry
        self.engines = engines
        self.settings = settings

    def model(self, name: str | None, version: int | str | None) -> LoadedModel:
        model = self.registry.get(name, version)
        note_model(model.spec.name)
        return model

    async def predict(
        self, name: str | None, version: int | str | None, request: PredictRequest
    ) -> PredictResponse:
        model = self.registry.get(name, version)
        return await predict(model, self.engines, request, self.settings)

    async def decode(
        self,
        model: LoadedModel,
        inputs: Sequence[TokensIn],
        max_steps: int | None,
        probabilities: bool,
        field: str = "inputs",
        options: DecodingOptions | None = None,
    ) -> Predicted:
        return await decode(
            model, self.engines, inputs, max_steps, probabilities, self.settings, field, options
        )


@dataclass(frozen=True)
class Prepared:
    """A batch checked against its model and the limits, ready to decode."""

    job: PredictJob
    plan: Plan


def prepare(
    model: LoadedModel,
    inputs: Sequence[TokensIn],
    max_steps: int | None,
    probabilities: bool,
    settings: Settings,
    field: str = "inputs",
    options: DecodingOptions | None = None,
) -> Prepared:
    """Checks a batch against the model and the limits. `field` names the inputs in
    error messages; `options`: how to decode (default greedy)."""
    spec = model.spec
    note_model(spec.name)
    manifest = spec.manifest
    seq2seq = manifest.kind == "seq2seq"
    plan = strategies.plan(options or GREEDY_OPTIONS, model, settings, probabilities, seq2seq)
    check_batch(inputs, settings, field)
    sequences = [
        source_ids(manifest, given, f"{field}[{i}]", settings) for i, given in enumerate(inputs)
    ]
    rows, fed = len(sequences), sum(len(s) for s in sequences)
    decoded = decode_steps(spec, max_steps, settings)
    if decoded is not None:
        steps = decoded
        what = f"{fed:,} source tokens + {rows} sequences x {steps} max_steps{plan.width_note}"
        emitted = rows * steps
    else:
        steps = 0
        what = f"{fed:,} input values in {rows} sequences"
        emitted = fed
    check_work(
        settings,
        steps=fed + rows * steps * plan.width,
        what=what,
        field=field,
        outputs=emitted,
        width=manifest.output_cardinality if probabilities else None,
    )
    job = PredictJob(sequences, steps, plan.rows(rows), [plan.returned] * rows)
    return Prepared(job, plan)


async def decode(
    model: LoadedModel,
    engines: Engines,
    inputs: Sequence[TokensIn],
    max_steps: int | None,
    probabilities: bool,
    settings: Settings,
    field: str = "inputs",
    options: DecodingOptions | None = None,
) -> Predicted:
    """`prepare`, then decode the batch."""
    ready = prepare(model, inputs, max_steps, probabilities, settings, field, options)
    decoded = await engines.get(model).predict(ready.job, probabilities)
    return Predicted(model, decoded, ready.plan, probabilities)


def answer_rows(
    model: LoadedModel, inputs: Sequence[TokensIn], ids: list[list[int]]
) -> list[list[Token] | str]:
    """What a row answers, in the native API and TF Serving's: text for a text input
    where the target has a tokenizer; otherwise target tokens (vocabulary strings where
    the target has a vocabulary)."""
    manifest = model.spec.manifest
    answers: list[list[Token] | str] = []
    for given, out in zip(inputs, ids, strict=True):
        text = to_text(manifest, out) if isinstance(given, str) else None
        answers.append(text if text is not None else to_tokens(manifest.target, out))
    return answers


async def predict(
    model: LoadedModel, engines: Engines, request: PredictRequest, settings: Settings
) -> PredictResponse:
    decoded = await decode(
        model,
        engines,
        request.inputs,
        request.max_steps,
        request.return_probabilities,
        settings,
        options=request,
    )
    return response(decoded, request.inputs)


def response(decoded: Predicted, inputs: Sequence[TokensIn]) -> PredictResponse:
    model = decoded.model
    extra = strategies.scored(decoded.plan, decoded.rows)
    sequences = None
    if extra.sequences is not None:
        sequences = [
            answer_rows(model, [given] * len(found), found)
            for given, found in zip(inputs, extra.sequences, strict=True)
        ]
    # built from our own values: no need to validate them again
    return PredictResponse.model_construct(
        model=model.spec.name,
        version=str(model.spec.version),
        outputs=answer_rows(model, inputs, decoded.ids),
        probabilities=decoded.probabilities,
        sequences=sequences,
        scores=extra.scores,
        step_scores=extra.step_scores,
        seed=decoded.plan.seed,
    )
