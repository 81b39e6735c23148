"""Wire models: every request and response body. No numpy, no TensorFlow."""

from __future__ import annotations

from typing import Annotated, Any, Literal

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


class ModelSummary(BaseModel):
    name: str
    kind: str
    versions: list[str]
    default_version: str


class ModelList(BaseModel):
    models: list[ModelSummary]


class SideInfo(BaseModel):
    """One side of a model's tokens, as its manifest declares it."""

    encoding: str
    cardinality: int
    vocabulary: list[str] | None = None
    tokenizer: str | None = None
    unk_token: str | None = None
    pad_token: str | None = None
    length: int | None = None


class VersionStatusCode(BaseModel):
    error_code: str = Field(description='"OK", or a canonical error code such as "UNKNOWN"')
    error_message: str


class ModelVersionStatus(BaseModel):
    """One version's status as TF Serving's GetModelStatusResponse gives it."""

    version: str
    state: Literal["UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END"] = Field(
        description="AVAILABLE: served; END: refused (status says why)"
    )
    status: VersionStatusCode


class ModelVersionInfo(BaseModel):
    name: str
    version: str
    kind: str
    description: str
    source: SideInfo = Field(description="what inputs (and session sources) are made of")
    target: SideInfo = Field(description="what outputs are made of")
    input_encoding: str = Field(description="source.encoding")
    input_cardinality: int = Field(description="source.cardinality")
    output_cardinality: int
    start_token: int | None = Field(description="id of the first decoder input")
    end_token: int | None = Field(description="id that ends a decode")
    max_steps: int
    decoder_output: str = Field(description="probabilities, or logits (softmaxed on output)")
    vocabulary_size: int | None
    vocabulary: list[str] | None = Field(description="when source and target share it")
    state_shapes: list[list[int]]
    memory_shape: list[int | None] | None = Field(
        description="attention models: the encoded source kept per session (time, units)"
    )
    metrics: dict[str, Any]
    model_version_status: list[ModelVersionStatus] = Field(
        description="TF Serving's model status: this version, or on the model every served "
        "(AVAILABLE) and refused (END) version, newest first"
    )


class FailedVersion(BaseModel):
    version: str | None = Field(description="null: the model directory as a whole")
    error: str = Field(description="why it was refused; paths relative to the model store")


class ModelDetail(ModelVersionInfo):
    versions: list[str]
    default_version: str
    failed_versions: list[FailedVersion] = Field(
        default_factory=list,
        description="store entries refused while serving (tried again when their files change)",
    )


class ModelVersionRef(BaseModel):
    model: str
    version: str


class RefusedEntry(FailedVersion):
    model: str


class ReloadResponse(BaseModel):
    loaded: list[ModelVersionRef] = Field(description="served from now on")
    unloaded: list[ModelVersionRef] = Field(description="removed from the store; no longer served")
    failed: list[RefusedEntry] = Field(
        description="every store entry currently refused, this time or before (tried again "
        "when its files change); the others keep serving"
    )
    store_error: str | None = Field(
        default=None, description="the store could not be scanned: nothing loaded or unloaded"
    )


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
