"""Wire models of the Open Inference Protocol (KServe V2) REST API, as Triton speaks it:
https://github.com/kserve/open-inference-protocol (inference_rest.md), with Triton's
binary tensor data and sequence extensions carried in `parameters`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)
from typing_extensions import TypeAliasType

from service.wire.native import from_settings

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a dimension of any size")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ModelReady(BaseModel):
    name: str
    ready: bool


class RequestParameters(BaseModel):
    """Request-level parameters this server understands (others are refused)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sequence_id: Annotated[StrictInt, Field(ge=0, le=2**64 - 1)] | StrictStr | None = Field(
        default=None, description="uint64 or string; 0 or '' means no sequence"
    )
    sequence_start: StrictBool = False
    sequence_end: StrictBool = False
    binary_data_output: StrictBool = Field(
        default=False, description="every output as binary data after the JSON header"
    )
    max_steps: StrictInt | None = Field(
        default=None,
        description="seq2seq models: decode steps (default: the manifest's); not for step models",
        json_schema_extra={"minimum": 1, **from_settings(maximum="max_decode_steps")},
    )
    priority: StrictInt | None = Field(default=None, description="accepted, not used")
    timeout: StrictInt | None = Field(default=None, description="accepted, not used")


class TensorParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    binary_data_size: StrictInt | None = Field(
        default=None, ge=0, description="bytes of this tensor's data after the JSON header"
    )
    binary_data: StrictBool | None = Field(default=None, description="outputs: send as binary")
    content_type: StrictStr | None = Field(default=None, description="accepted, not used")


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: StrictStr
    shape: list[StrictInt]
    datatype: StrictStr
    parameters: TensorParameters | None = None
    data: list[Any] | None = Field(
        default=None, description="flat or nested, row-major; absent with binary_data_size"
    )


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: StrictStr = Field(
        json_schema_extra={"enum": ["tokens", "probabilities", "text"]},
        description="text where the model's target has a tokenizer",
    )
    parameters: TensorParameters | None = None


# How an input looks in a JSON body, for the OpenAPI document only (the server reads
# RequestInput and says precisely what is wrong): 'tokens' (INT64 or INT32 ids,
# [batch, length]) or 'text' (BYTES, [batch] or [batch, 1]), with its data (in binary
# tensor data, parameters.binary_data_size stands for it).
TokenIds64 = TypeAliasType(
    "TokenIds64", "Annotated[int, Field(ge=0, le=INT64_MAX)] | list[TokenIds64]"
)
TokenIds32 = TypeAliasType(
    "TokenIds32", "Annotated[int, Field(ge=0, le=INT32_MAX)] | list[TokenIds32]"
)
Texts = TypeAliasType("Texts", "Annotated[str, Field(min_length=1)] | list[Texts]")
_BATCH = {"type": "integer", "minimum": 1, **from_settings(maximum="max_batch_size")}
_LENGTH = {"type": "integer", "minimum": 1, **from_settings(maximum="max_sequence_length")}
_TOKENS_SHAPE = {"type": "array", "prefixItems": [_BATCH, _LENGTH], "minItems": 2, "maxItems": 2}
_TEXT_SHAPE = {"type": "array", "prefixItems": [_BATCH, {"const": 1}], "minItems": 1, "maxItems": 2}


class JsonInputParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    binary_data: bool | None = Field(default=None, description="not used on inputs")
    content_type: str | None = Field(default=None, description="not used")


class TokensInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["tokens"]
    datatype: Literal["INT64"]
    shape: Annotated[list[int], WithJsonSchema(_TOKENS_SHAPE)] = Field(
        description="[batch, length]"
    )
    data: list[TokenIds64] = Field(description="row-major, flat or nested")
    parameters: JsonInputParameters | None = None


class Int32TokensInput(TokensInput):
    datatype: Literal["INT32"]  # type: ignore[assignment]
    data: list[TokenIds32] = Field(description="row-major, flat or nested")


class TextInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["text"]
    datatype: Literal["BYTES"]
    shape: Annotated[list[int], WithJsonSchema(_TEXT_SHAPE)] = Field(
        description="[batch] or [batch, 1]"
    )
    data: list[Texts] = Field(description="one text per row, flat or nested")
    parameters: JsonInputParameters | None = None


def _same(value: Any) -> Any:
    return value


_NO_SEQUENCE = {
    "anyOf": [{"type": "null"}, {"properties": {"sequence_id": {"enum": [None, 0, ""]}}}]
}
# Triton's sequence extension: without a sequence, one input and neither start nor end;
# in a sequence, one row
SEQUENCE_RULES: dict[str, Any] = {
    "if": {"properties": {"parameters": _NO_SEQUENCE}},
    "then": {
        "properties": {
            "inputs": {"minItems": 1},
            "parameters": {
                "anyOf": [
                    {"type": "null"},
                    {
                        "properties": {
                            "sequence_start": {"const": False},
                            "sequence_end": {"const": False},
                        }
                    },
                ]
            },
        }
    },
    "else": {
        "properties": {
            "inputs": {"items": {"properties": {"shape": {"prefixItems": [{"const": 1}]}}}}
        }
    },
}


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=SEQUENCE_RULES)

    id: StrictStr | None = None
    parameters: RequestParameters | None = None
    inputs: Annotated[
        list[RequestInput],
        BeforeValidator(
            _same,
            json_schema_input_type=Annotated[
                list[TokensInput | Int32TokensInput | TextInput], Field(max_length=1)
            ],
        ),
    ] = Field(
        description="one input: 'tokens', or 'text' where the model's source has a tokenizer "
        "(GET /v2/models/{model_name}); none to continue a seq2seq sequence"
    )
    outputs: list[RequestOutput] | None = Field(
        default=None, description="which outputs to return (default: tokens, and text if any)"
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class PlainError(BaseModel):
    """The error body of the Open Inference Protocol and TF Serving's REST API."""

    error: str
