"""Wire models: every request and response body. No numpy, no TensorFlow."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)


def _token(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"a token must be an integer id or a vocabulary string, got {type(value).__name__}"
        )
    return value


Token = Annotated[
    int | str,
    PlainValidator(_token),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}]}),
]
Sequence_ = Annotated[list[Token], Field(min_length=1)]
# One entry per state tensor, each nested lists of numbers shaped like the tensor
# for one sample (e.g. 128 floats for an LSTM(128) h). Shapes are checked per model.
StateTensors = Annotated[list[Any], Field(min_length=1)]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PredictRequest(Request):
    model: str | None = Field(default=None, description="only for POST /predict")
    version: StrictInt | StrictStr | None = Field(default=None, description="only for /predict")
    inputs: Annotated[list[Sequence_], Field(min_length=1)]
    max_steps: int | None = None  # range checked against SERVICE_MAX_DECODE_STEPS
    return_probabilities: bool = False


class PredictResponse(BaseModel):
    model: str
    version: str
    outputs: list[list[Token]]
    probabilities: list[list[list[float]]] | None = None


class CreateSessionRequest(Request):
    model: str
    version: StrictInt | StrictStr | None = None
    source: Sequence_ | None = Field(default=None, description="seq2seq: encoded for the state")
    state: StateTensors | None = None


class SessionInfo(BaseModel):
    session_id: str
    model: str
    version: str
    steps: int
    created_at: str
    expires_at: str
    state: list[Any] | None = None


class StepRequest(Request):
    inputs: Sequence_
    return_probabilities: bool = False


class GenerateRequest(Request):
    max_steps: int | None = None  # range checked against SERVICE_MAX_DECODE_STEPS
    return_probabilities: bool = False


class StepResponse(BaseModel):
    session_id: str
    outputs: list[Token]
    steps: int
    probabilities: list[list[float]] | None = None


class SetStateRequest(Request):
    state: StateTensors


class ModelSummary(BaseModel):
    name: str
    kind: str
    versions: list[str]
    default_version: str


class ModelList(BaseModel):
    models: list[ModelSummary]


class ModelVersionInfo(BaseModel):
    name: str
    version: str
    kind: str
    description: str
    input_encoding: str
    input_cardinality: int
    output_cardinality: int
    start_token: int | None
    end_token: int | None
    max_steps: int
    vocabulary_size: int | None
    vocabulary: list[str] | None
    state_shapes: list[list[int]]
    metrics: dict[str, Any]


class ModelDetail(ModelVersionInfo):
    versions: list[str]
    default_version: str


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
