"""Batch decoding for seq2seq models, zero-state step runs for step models: one rule set
for every protocol (the native API, the Open Inference Protocol, TF Serving's REST)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.config import Settings
from service.dataplane.limits import check_batch, check_max_steps, check_work, max_steps_unused
from service.dataplane.tokens import TokensIn, source_ids, to_text, to_tokens
from service.inference.base import LoadedModel
from service.inference.engine import Engines
from service.inference.registry import Registry
from service.request_context import note_model
from service.schemas import PredictRequest, PredictResponse, Token


@dataclass(frozen=True)
class Predicted:
    """What a model answered for a batch: target ids per input (rows may differ in
    length: a seq2seq row ends at the end token), and optional probabilities."""

    model: LoadedModel
    ids: list[list[int]]
    probabilities: list[list[list[float]]] | None


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
    ) -> Predicted:
        return await decode(
            model, self.engines, inputs, max_steps, probabilities, self.settings, field
        )


async def decode(
    model: LoadedModel,
    engines: Engines,
    inputs: Sequence[TokensIn],
    max_steps: int | None,
    probabilities: bool,
    settings: Settings,
    field: str = "inputs",
) -> Predicted:
    """Checks a batch against the model and the limits, then decodes it. `field` names
    the inputs in error messages."""
    spec = model.spec
    note_model(spec.name)
    manifest = spec.manifest
    check_batch(inputs, settings, field)
    sequences = [
        source_ids(manifest, given, f"{field}[{i}]", settings) for i, given in enumerate(inputs)
    ]
    rows, fed = len(sequences), sum(len(s) for s in sequences)
    if manifest.kind == "seq2seq":
        steps = check_max_steps(max_steps, manifest.max_steps, settings)
        what = f"{fed:,} source tokens + {rows} sequences x {steps} max_steps"
        emitted = rows * steps
    elif max_steps is not None:
        raise max_steps_unused(spec.name)
    else:
        steps = 0
        what = f"{fed:,} input values in {rows} sequences"
        emitted = fed
    check_work(
        settings,
        steps=fed + rows * steps,
        what=what,
        field=field,
        outputs=emitted,
        width=manifest.output_cardinality if probabilities else None,
    )
    ids, probs = await engines.get(model).predict(sequences, steps, probabilities)
    return Predicted(model, ids, probs)


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
        model, engines, request.inputs, request.max_steps, request.return_probabilities, settings
    )
    answers = answer_rows(model, request.inputs, decoded.ids)
    # built from our own values: no need to validate them again
    return PredictResponse.model_construct(
        model=model.spec.name,
        version=str(model.spec.version),
        outputs=answers,
        probabilities=decoded.probabilities,
    )
