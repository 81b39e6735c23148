"""Wire models of the Open Inference Protocol (KServe V2) REST API, as Triton speaks it:
https://github.com/kserve/open-inference-protocol (inference_rest.md), with Triton's
binary tensor data and sequence extensions carried in `parameters`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr


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
        default=None, description="seq2seq models: decode steps (default: the manifest's)"
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

    name: StrictStr
    parameters: TensorParameters | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: StrictStr | None = None
    parameters: RequestParameters | None = None
    inputs: list[RequestInput]
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
