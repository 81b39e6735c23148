"""Wire fields for how a sequence is decoded (greedy, beam search, sampling), and the
server-sent events a streamed decode answers with. Shared by /predict and session
`generate`; the rules that relate them are in service/dataplane/strategies.py."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from service.wire.types import Token, from_settings

Strategy = Literal["greedy", "beam", "sample"]
SEED_MAX = 2**53 - 1  # exact as a JSON number in every language (JavaScript included)


class DecodingOptions(BaseModel):
    """Mixed into request bodies that decode (strict, no extra fields: see Request)."""

    strategy: Strategy = Field(
        default="greedy",
        description="greedy: the most probable token at each step; beam: beam search; "
        "sample: draw each token from the model's distribution",
    )
    beam_width: Annotated[
        int | None,
        Field(
            description="beam: hypotheses kept per input (default 4, or "
            "num_return_sequences if more)",
            json_schema_extra={"minimum": 1, **from_settings(maximum="max_beam_width")},
        ),
    ] = None
    length_penalty: Annotated[
        float | None,
        Field(
            ge=0,
            le=10,
            description="beam: GNMT alpha; hypotheses rank by log-probability / "
            "((5 + length) / 6) ** alpha (default 0: none)",
        ),
    ] = None
    num_return_sequences: Annotated[
        int | None,
        Field(
            description="beam: the n best per input (<= beam_width; default 1)",
            json_schema_extra={"minimum": 1, **from_settings(maximum="max_beam_width")},
        ),
    ] = None
    temperature: Annotated[
        float | None,
        Field(ge=0, le=100, description="sample: divides the log-probabilities (0: argmax)"),
    ] = None
    top_k: Annotated[
        int | None,
        Field(ge=1, description="sample: draw among the k most probable tokens only"),
    ] = None
    top_p: Annotated[
        float | None,
        Field(
            gt=0,
            le=1,
            description="sample: draw among the most probable tokens whose probabilities "
            "add up to top_p (nucleus sampling)",
        ),
    ] = None
    seed: Annotated[
        int | None,
        Field(
            ge=0,
            le=SEED_MAX,
            description="sample: the same seed and request give the same output, batched "
            "or not (default: a random seed, returned in the answer)",
        ),
    ] = None
    return_scores: bool = Field(
        default=False,
        description="add each output's log-probability (scores) and its tokens' "
        "(step_scores), under the model's distribution",
    )
    stream: bool = Field(
        default=False,
        description="answer text/event-stream: a 'token' event per decoded token, then a "
        "'result' event with the whole answer (one input only; beam sends only the result)",
    )


class TokenEvent(BaseModel):
    """data of a streamed `token` event: one decoded token, as soon as it is chosen."""

    index: int = Field(description="position in the output, from 0")
    token: Token
    text: str | None = Field(default=None, description="the token as text, with a tokenizer")
    score: float | None = Field(default=None, description="its log-probability (return_scores)")
