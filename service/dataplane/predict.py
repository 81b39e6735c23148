"""POST .../predict: batch decoding for seq2seq models, zero-state step runs for step models."""

from __future__ import annotations

from service.config import Settings
from service.dataplane.limits import check_batch, check_max_steps, check_work
from service.dataplane.tokens import source_ids, to_text, to_tokens
from service.errors import InvalidInput
from service.inference.base import LoadedModel
from service.inference.engine import Engines
from service.inference.registry import Registry
from service.schemas import PredictRequest, PredictResponse, Token


class Predictor:
    def __init__(self, registry: Registry, engines: Engines, settings: Settings):
        self.registry = registry
        self.engines = engines
        self.settings = settings

    async def predict(
        self, name: str | None, version: int | str | None, request: PredictRequest
    ) -> PredictResponse:
        model = self.registry.get(name, version)
        return await predict(model, self.engines, request, self.settings)


async def predict(
    model: LoadedModel, engines: Engines, request: PredictRequest, settings: Settings
) -> PredictResponse:
    spec = model.spec
    manifest = spec.manifest
    check_batch(request.inputs, settings)
    sequences = [
        source_ids(manifest, given, f"inputs[{i}]", settings)
        for i, given in enumerate(request.inputs)
    ]
    rows, fed = len(sequences), sum(len(s) for s in sequences)
    if manifest.kind == "seq2seq":
        steps = check_max_steps(request.max_steps, manifest.max_steps, settings)
        what = f"{fed:,} source tokens + {rows} sequences x {steps} max_steps"
        emitted = rows * steps
    elif request.max_steps is not None:
        raise InvalidInput(
            f"max_steps: not used by '{spec.name}' (a step model predicts once per input "
            "value); omit it",
            field="max_steps",
        )
    else:
        steps = 0
        what = f"{fed:,} input values in {rows} sequences"
        emitted = fed
    check_work(
        settings,
        steps=fed + rows * steps,
        what=what,
        field="inputs",
        outputs=emitted,
        width=manifest.output_cardinality if request.return_probabilities else None,
    )
    outputs, probabilities = await engines.get(model).predict(
        sequences, steps, request.return_probabilities
    )
    answers: list[list[Token] | str] = []
    for given, out in zip(request.inputs, outputs, strict=True):
        text = to_text(manifest, out) if isinstance(given, str) else None
        answers.append(text if text is not None else to_tokens(manifest.target, out))
    # built from our own values: no need to validate them again
    return PredictResponse.model_construct(
        model=spec.name,
        version=str(spec.version),
        outputs=answers,
        probabilities=probabilities,
    )
