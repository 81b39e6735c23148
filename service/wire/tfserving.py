"""Wire models of TF Serving's REST API (`:predict`, `/metadata`). No numpy, no TensorFlow.

A model serves one signature, `serving_default`, with one input tensor, `tokens` (a
batch of sequences: token lists, or texts where the source has a tokenizer), and one
output tensor, `outputs` (per instance the target tokens, or text for a text instance
where the target has a tokenizer).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from service.wire.native import MaxSteps, Request, Token, TokensOrText, from_settings

SIGNATURE = "serving_default"
INPUT = "tokens"
OUTPUT = "outputs"
PREDICT_METHOD = "tensorflow/serving/predict"

_TOKEN_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}
_SEQUENCE_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "array",
            "items": _TOKEN_SCHEMA,
            "minItems": 1,
            **from_settings(maxItems="max_sequence_length"),
        },
        {
            "type": "string",
            "minLength": 1,
            "description": "text, where the model's source has a tokenizer",
        },
    ]
}
_BATCH_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": _SEQUENCE_SCHEMA,
    "minItems": 1,
    **from_settings(maxItems="max_batch_size"),
}


def _named(value: Any) -> Any:
    """`{"tokens": x}` (the one named input) -> x; anything else as it is."""
    if not isinstance(value, dict):
        return value
    if set(value) != {INPUT}:
        names = ", ".join(repr(k)[:40] for k in list(value)[:5]) or "none"
        raise PydanticCustomError(
            "named_input",
            f"the model has one input, '{INPUT}'; got input names {{names}}",
            {"names": names},
        )
    return value[INPUT]


Instance = Annotated[
    TokensOrText,
    BeforeValidator(_named),
    WithJsonSchema(
        {
            "anyOf": [
                *_SEQUENCE_SCHEMA["anyOf"],
                {
                    "type": "object",
                    "properties": {INPUT: _SEQUENCE_SCHEMA},
                    "required": [INPUT],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]
Columns = Annotated[
    list[TokensOrText],
    Field(fail_fast=True, min_length=1),
    BeforeValidator(_named),
    WithJsonSchema(
        {
            "anyOf": [
                _BATCH_SCHEMA,
                {
                    "type": "object",
                    "properties": {INPUT: _BATCH_SCHEMA},
                    "required": [INPUT],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]


class TFPredictRequest(Request):
    """Exactly one of `instances` (row format) and `inputs` (columnar format)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {"required": ["instances"], "properties": {"instances": {"type": "array"}}},
                {"required": ["inputs"], "properties": {"inputs": {"not": {"type": "null"}}}},
            ]
        }
    )

    signature_name: str | None = Field(
        default=None,
        description=f'"{SIGNATURE}" (or "" or absent: the same)',
        json_schema_extra={"enum": [SIGNATURE, "", None]},
    )
    instances: (
        Annotated[
            list[Instance],
            Field(
                fail_fast=True,
                min_length=1,
                json_schema_extra=from_settings(maxItems="max_batch_size"),
            ),
        ]
        | None
    ) = Field(
        default=None,
        description=f'row format: one sequence per instance, or {{"{INPUT}": sequence}}',
    )
    inputs: Columns | None = Field(
        default=None, description=f'columnar format: the batch, or {{"{INPUT}": batch}}'
    )
    max_steps: MaxSteps = Field(
        default=None,
        description="not in TF Serving: decode steps for seq2seq models, as in /predict",
    )


Prediction = list[Token] | str


class TFRowResponse(BaseModel):
    predictions: list[Prediction] = Field(description="one output per instance")


class TFColumnarResponse(BaseModel):
    outputs: list[Prediction] = Field(description="the output tensor: one row per input row")


class Dim(BaseModel):
    size: str = Field(description='int64 as a string, as protobuf JSON has it; "-1": any')
    name: str = ""


class TensorShape(BaseModel):
    dim: list[Dim]
    unknown_rank: bool = False


class TensorInfo(BaseModel):
    dtype: str = Field(description="DT_INT64 (token ids) or DT_STRING (tokens or text)")
    tensor_shape: TensorShape
    name: str


class SignatureDef(BaseModel):
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    method_name: str


class SignatureDefMap(BaseModel):
    signature_def: dict[str, SignatureDef]


class TFModelMetadata(BaseModel):
    signature_def: SignatureDefMap


class TFModelSpec(BaseModel):
    name: str
    signature_name: str
    version: str


class TFMetadataResponse(BaseModel):
    """TF Serving's GetModelMetadataResponse."""

    model_spec: TFModelSpec
    metadata: TFModelMetadata
