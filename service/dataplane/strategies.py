"""Decoding options -> what each row runs: the checks that relate the options to each
other, to the model and to the limits, and the scores an answer carries. One rule set
for /predict and session generate."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

from service.config import Settings
from service.errors import InvalidInput
from service.inference.model.interface import Decoding, LoadedModel
from service.inference.reference.sampling import row_seeds
from service.inference.serving.decoding import RowDecoded
from service.wire.decoding import SEED_MAX, DecodingOptions

BEAM_ONLY = ("beam_width", "length_penalty", "num_return_sequences")
SAMPLE_ONLY = ("temperature", "top_k", "top_p", "seed")
DEFAULT_BEAM_WIDTH = 4


@dataclass(frozen=True)
class Plan:
    """One request's decoding: `decoding` for every row (sampling rows get their own
    stream from `seed`), the hypotheses each row returns, what scores to answer."""

    decoding: Decoding
    returned: int
    scores: bool
    step_scores: bool
    seed: int | None

    @property
    def width(self) -> int:
        """Rows the decoder steps per input: the work bound counts them all."""
        return self.decoding.beam_width

    @property
    def width_note(self) -> str:
        """How the width enters a work bound's message ("" when it is 1)."""
        return f" x beam_width {self.width}" if self.width > 1 else ""

    def rows(self, count: int) -> list[Decoding]:
        if self.seed is None:
            return [self.decoding] * count
        return [replace(self.decoding, seed=int(s)) for s in row_seeds(self.seed, count)]


def _misplaced(options: DecodingOptions, names: tuple[str, ...], wants: str) -> None:
    for name in names:
        if getattr(options, name) is not None:
            raise InvalidInput(
                f"{name}: only with strategy '{wants}' (strategy is '{options.strategy}'); "
                f'set "strategy": "{wants}" or omit {name}',
                field=name,
            )


def plan(
    options: DecodingOptions,
    model: LoadedModel,
    settings: Settings,
    probabilities: bool,
    generates: bool = True,
) -> Plan:
    """`generates`: the model decodes here (a seq2seq predict, or session generate); a
    step model's predict runs given inputs, where only greedy's argmax applies."""
    strategy = options.strategy
    if strategy != "greedy" and not generates:
        raise InvalidInput(
            f"strategy: '{model.spec.name}' is a step model, which /predict runs on the given "
            "inputs; allowed here: 'greedy' (beam and sample decode: use a session's generate)",
            field="strategy",
        )
    if strategy != "beam":
        _misplaced(options, BEAM_ONLY, "beam")
    if strategy != "sample":
        _misplaced(options, SAMPLE_ONLY, "sample")
    scores = options.return_scores
    if strategy == "beam":
        return _beam(options, settings, probabilities)
    if strategy == "sample":
        seed = options.seed if options.seed is not None else secrets.randbelow(SEED_MAX + 1)
        decoding = Decoding(
            strategy="sample",
            temperature=1.0 if options.temperature is None else options.temperature,
            top_k=min(options.top_k or 0, model.spec.manifest.output_cardinality),
            top_p=1.0 if options.top_p is None else options.top_p,
        )
        return Plan(decoding, 1, scores, scores, seed)
    return Plan(Decoding(), 1, scores, scores, None)


def _beam(options: DecodingOptions, settings: Settings, probabilities: bool) -> Plan:
    limit = settings.max_beam_width
    width = options.beam_width
    if width is None:  # wide enough for the n asked, within the limit
        width = min(max(DEFAULT_BEAM_WIDTH, options.num_return_sequences or 1), limit)
    if not 1 <= width <= limit:
        raise InvalidInput(
            f"beam_width: {width} is out of range; allowed: 1..{limit} (SERVICE_MAX_BEAM_WIDTH)",
            field="beam_width",
        )
    returned = 1 if options.num_return_sequences is None else options.num_return_sequences
    if not 1 <= returned <= width:
        raise InvalidInput(
            f"num_return_sequences: {returned} is out of range; allowed: 1..{width} (at most "
            "beam_width)",
            field="num_return_sequences",
        )
    if probabilities:
        raise InvalidInput(
            "return_probabilities: not with strategy 'beam' (a beam's hypotheses have no "
            "single distribution per step); use return_scores for each token's log-probability",
            field="return_probabilities",
        )
    decoding = Decoding(
        strategy="beam", beam_width=width, length_penalty=options.length_penalty or 0.0
    )
    return Plan(decoding, returned, True, options.return_scores, None)


@dataclass(frozen=True)
class Scored:
    """What an answer carries beyond each row's best output."""

    sequences: list[list[list[int]]] | None
    scores: list[list[float]] | None
    step_scores: list[list[list[float]]] | None


def scored(plan: Plan, rows: list[RowDecoded]) -> Scored:
    return Scored(
        sequences=[[h.tokens for h in r.hypotheses] for r in rows] if plan.returned > 1 else None,
        scores=[[h.score for h in r.hypotheses] for r in rows] if plan.scores else None,
        step_scores=[[h.step_scores for h in r.hypotheses] for r in rows]
        if plan.step_scores
        else None,
    )
