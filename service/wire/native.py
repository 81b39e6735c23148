"""Wire models: every request and response body. No numpy, no TensorFlow."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    StrictStr,
    Tag,
    WithJsonSchema,
)
from typing_extensions import TypeAliasType

from service.wire.decoding import DecodingOptions
from service.wire.types import FLOAT32_MAX, SETTINGS_KEY, Token, from_settings

__all__ = ["FLOAT32_MAX", "SETTINGS_KEY", "Token", "from_settings"]

# fail_fast: a list stops at its first wrong item, so a body of 600,000 wrong tokens
# costs one error, not 600,000 (5 s of validation)
Sequence_ = Annotated[
    list[Token],
    Field(
        fail_fast=True,
        min_length=1,
        json_schema_extra=from_settings(maxItems="max_sequence_length"),
    ),
]
# A sequence as tokens, or as text where that side of the model declares a tokenizer
# (split into characters or words, then looked up in its vocabulary).
TokensOrText = Annotated[
    Annotated[Sequence_, Tag("tokens")]
    # text without tokens is refused once split (service/dataplane/tokens.py), "" included
    | Annotated[str, Tag("text"), WithJsonSchema({"type": "string", "minLength": 1})],
    Discriminator(lambda v: "text" if isinstance(v, str) else "tokens"),
    Field(description="tokens (ids or vocabulary strings), or text if the model has a tokenizer"),
]
Batch = Annotated[
    list[TokensOrText],
    Field(fail_fast=True, min_length=1, json_schema_extra=from_settings(maxItems="max_batch_size")),
]
# range checked by the dataplane, whose message names the setting
MaxSteps = Annotated[
    int | None,
    Field(
        description="seq2seq models: decode steps (default: the model's); not for step models",
        json_schema_extra={"minimum": 1, **from_settings(maximum="max_decode_steps")},
    ),
]
# One entry per state tensor, each nested lists of numbers shaped like the tensor
# for one sample (e.g. 128 floats for an LSTM(128) h). Shapes and values are checked
# per model (service/dataplane/tokens.py, whose messages say what is wrong); the
# schema says what it can.
StateTensor = TypeAliasType(
    "StateTensor", "Annotated[float, Field(ge=-FLOAT32_MAX, le=FLOAT32_MAX)] | list[StateTensor]"
)


def _same(value: Any) -> Any:
    return value


StateTensors = Annotated[
    list[Any],
    Field(min_length=1),
    BeforeValidator(
        _same,
        json_schema_input_type=Annotated[
            list[StateTensor],
            Field(
                min_length=1,
                description="one tensor per state (GET /v1/models/{name}: state_shapes)",
            ),
        ],
    ),
]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# Decoding options come after a body's own fields (documentation and messages list fields in
# the order pydantic collects them: the bases' in reverse MRO order, then the class's own).
class _PredictFields(Request):
    model: str | None = Field(default=None, description="default: SERVICE_DEFAULT_MODEL")
    version: StrictInt | StrictStr | None = Field(default=None, description="default: the newest")
    inputs: Batch
    max_steps: MaxSteps = None
    return_probabilities: bool = False


class PredictRequest(DecodingOptions, _PredictFields):
    """POST /predict: the model (default: SERVICE_DEFAULT_MODEL) and version in the body."""


class _ModelPredictFields(Request):
    inputs: Batch
    max_steps: MaxSteps = None
    return_probabilities: bool = False


class ModelPredictRequest(DecodingOptions, _ModelPredictFields):
    """The predict routes that name the model in their path: no 'model', no 'version'."""


class PredictResponse(BaseModel):
    model: str
    version: str
    outputs: list[list[Token] | str] = Field(description="text for each text input")
    probabilities: list[list[list[float]]] | None = None
    sequences: list[list[list[Token] | str]] | None = Field(
        default=None, description="num_return_sequences > 1: the n best per input, best first"
    )
    scores: list[list[float]] | None = Field(
        default=None,
        description="beam or return_scores: per input, the log-probability of each returned "
        "sequence (the first is outputs')",
    )
    step_scores: list[list[list[float]]] | None = Field(
        default=None, description="return_scores: per input and sequence, each token's"
    )
    seed: int | None = Field(default=None, description="sample: the seed used")


class CreateSessionRequest(Request):
    model: str
    version: StrictInt | StrictStr | None = None
    source: TokensOrText | None = Field(default=None, description="seq2seq: encoded")
    state: StateTensors | None = None

    model_config = ConfigDict(
        json_schema_extra={
            "not": {
                "description": "not both 'source' and 'state'",
                "required": ["source", "state"],
                "properties": {
                    "source": {"not": {"type": "null"}},
                    "state": {"not": {"type": "null"}},
                },
            }
        }
    )


class SessionInfo(BaseModel):
    session_id: str
    model: str
    version: str
    steps: int
    created_at: str
    expires_at: str
    state: list[Any] | None = None
    memory: list[Any] | None = Field(
        default=None, description="attention models: the encoded source (time x units)"
    )


class StepRequest(Request):
    inputs: TokensOrText
    return_probabilities: bool = False


class _GenerateFields(Request):
    max_steps: MaxSteps = None
    return_probabilities: bool = False


class GenerateRequest(DecodingOptions, _GenerateFields):
    """POST /v1/sessions/{id}/generate: decode on from the session's state."""


class StepResponse(BaseModel):
    session_id: str
    outputs: list[Token]
    steps: int
    text: str | None = Field(default=None, description="the outputs as text, if a tokenizer")
    probabilities: list[list[float]] | None = None
    sequences: list[list[Token]] | None = Field(
        default=None,
        description="num_return_sequences > 1: the n best, best first (the session continues "
        "from the first)",
    )
    scores: list[float] | None = Field(
        default=None, description="beam or return_scores: each returned sequence's log-probability"
    )
    step_scores: list[list[float]] | None = Field(
        default=None, description="return_scores: each returned sequence's tokens'"
    )
    seed: int | None = Field(default=None, description="sample: the seed used")


class SetStateRequest(Request):
    state: StateTensors


class Health(BaseModel):
    status: str
    detail: dict[str, Any] = Field(default_factory=dict)


class ErrorDetail(BaseModel):
    code: str = Field(description="e.g. invalid_input, not_found, session_corrupt")
    message: str = Field(description="what is wrong and what is allowed")
    field: str | None = Field(default=None, description="the request field at fault")


class ErrorBody(BaseModel):
    """Every error answer has this shape."""

    error: ErrorDetail
