"""Wire models of what the server says about its models: the list, a version's details
and status (TF Serving's status answer shares them), and a reload's report."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


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
    decoder_kind: Literal["recurrent", "transformer"] = Field(
        description="recurrent: the decoder carries states; transformer: it reads the target "
        "tokens so far (at most max_steps) and the encoded source"
    )
    kv_cache: bool | None = Field(
        description="transformer decoders: whether a step feeds one token to a key/value "
        "cache (false: it re-runs the decoder on the target tokens so far); null: recurrent"
    )
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


class XlaBuckets(BaseModel):
    """The default version's XLA programs by shape bucket (SERVICE_XLA)."""

    batch_sizes: list[int] = Field(
        description="the batch buckets: a batch is padded up to the next of these"
    )
    ready: dict[str, list[int]] = Field(
        description="graph name -> batch sizes compiled (run by XLA from now on)"
    )
    pending: dict[str, list[int]] = Field(
        description="graph name -> batch sizes queued for compiling (served by the TF "
        "graph meanwhile)"
    )


class ModelDetail(ModelVersionInfo):
    versions: list[str]
    default_version: str
    failed_versions: list[FailedVersion] = Field(
        default_factory=list,
        description="store entries refused while serving (tried again when their files change)",
    )
    compiler: Literal["xla", "graph"] = Field(
        default="graph",
        description="what runs the default version's graphs: xla (each bucket once it is "
        "compiled) or graph (TF graphs: SERVICE_XLA=off, or XLA cannot compile the model)",
    )
    buckets: XlaBuckets | None = Field(
        default=None, description="with compiler xla: which shape buckets are compiled"
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
