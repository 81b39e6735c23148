"""The Open Inference Protocol (KServe V2) REST endpoints, as Triton serves them, with
the binary tensor data and sequence extensions. Thin: the dataplane does the work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from service import __version__
from service.api.bodies.inflate import inflated
from service.api.bodies.offload import SMALL_ANSWER, SMALL_BODY, off_loop
from service.api.bodies.pieces import serialised
from service.api.bodies.read import documented, parse_bytes
from service.api.deps import predictor, ready, registry, session_ops
from service.api.docs.responses import plain
from service.api.errors import HttpError, declare_plain
from service.api.middleware.auth import owner_of
from service.config import Settings
from service.dataplane.health import liveness, readiness
from service.dataplane.oip import Decoded, Read, infer, model_metadata, outputs, read_request
from service.dataplane.oip_prefix import check_prefix
from service.dataplane.tensors import encode_outputs, split_body
from service.inference.model.interface import LoadedModel
from service.wire.oip import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ServerMetadata,
)

router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data", "sequence", "parameters"]
NOT_READY = {
    "loading": "loading models",
    "draining": "shutting down",
    "failed": "a batch worker has stopped; the server needs a restart",
}
# the protocol's error shape, {"error": "<message>"}, everywhere under /v2
declare_plain("/v2", "/v2/{rest:path}")


class NotTrue(HttpError):
    """A V2 health answer of false: a 4xx, as the protocol says."""

    status = 400
    code = "not_ready"


@router.get("", response_model=ServerMetadata)
async def server_metadata() -> ServerMetadata:
    return ServerMetadata(name="seq2seq-serving", version=__version__, extensions=EXTENSIONS)


def _probe(*statuses: int) -> dict[str, Any]:
    """A yes-or-no route: 200 with no body, as Triton answers; false is a 4xx."""
    responses: dict[int | str, dict[str, object]] = {200: {"description": "true (no body)"}}
    responses.update(plain(*statuses))
    if 400 in statuses:
        responses[400] = {**responses[400], "description": "false (the message says why)"}
    return {"response_class": Response, "responses": responses}


@router.get("/health/live", **_probe(400))
async def live(request: Request) -> Response:
    """200 while the server can serve; 400 if a model's batch worker has stopped."""
    _, alive = liveness(request.app.state.runtime)
    if not alive:
        raise NotTrue("a batch worker has stopped; the server needs a restart")
    return Response(status_code=200)


@router.get("/health/ready", **_probe(400))
async def server_ready(request: Request) -> Response:
    """200 when /readyz is: every model loaded, no batch worker stopped, not shutting
    down; 400 otherwise."""
    health, ready = await readiness(request.app.state.runtime, counted=False)
    if not ready:
        raise NotTrue(f"not ready: {NOT_READY[health.status]}")
    return Response(status_code=200)


def _metadata(request: Request, name: str, version: str | None) -> ModelMetadata:
    served = registry(request)
    model = served.get(name, version)
    versions = served.versions(name) if version is None else [model.spec.version]
    return model_metadata(model, versions)


@router.get("/models/{model_name}", response_model=ModelMetadata, responses=plain(404, 503))
async def metadata(model_name: str, request: Request) -> ModelMetadata:
    return _metadata(request, model_name, None)


@router.get(
    "/models/{model_name}/versions/{model_version}",
    response_model=ModelMetadata,
    responses=plain(404, 503),
)
async def version_metadata(model_name: str, model_version: str, request: Request) -> ModelMetadata:
    return _metadata(request, model_name, model_version)


@router.get("/models/{model_name}/ready", **_probe(404, 503))
async def model_ready(model_name: str, request: Request) -> Response:
    registry(request).get(model_name)  # 404 if not served
    return Response(status_code=200)


@router.get("/models/{model_name}/versions/{model_version}/ready", **_probe(404, 503))
async def version_ready(model_name: str, model_version: str, request: Request) -> Response:
    registry(request).get(model_name, model_version)
    return Response(status_code=200)


def _infer_body() -> dict[str, Any]:
    """JSON, or Triton's binary tensor data. The headers that go with binary data and
    compression are described, not declared as parameters: their values must agree with
    the body (a length within it, a body compressed that way), which no schema can say."""
    extra = documented(InferenceRequest)
    body = extra["requestBody"]
    body["description"] = (
        f"JSON; or binary tensor data: a JSON header of {HEADER_LENGTH} bytes (inputs "
        "with parameters.binary_data_size instead of data), then each binary input's raw "
        "little-endian bytes (BYTES elements each after a 4-byte length), with "
        f"{HEADER_LENGTH} set. Content-Encoding: gzip or deflate bodies are inflated "
        "(up to SERVICE_MAX_BODY_BYTES; gzip members in order; nothing may follow the data)."
    )
    body["content"]["application/octet-stream"] = BINARY
    return extra


async def _infer(request: Request, name: str, version: str | None) -> Response:
    runtime = ready(request)
    model = registry(request).get(name, version)
    settings = runtime.settings
    raw = await inflated(
        await request.body(), request.headers.get("content-encoding"), settings.max_body_bytes
    )
    header_length = request.headers.get(HEADER_LENGTH)
    small = len(raw) <= SMALL_BODY
    read = await off_loop(small, _read, model, raw, header_length, settings)
    decoded = await infer(predictor(request), session_ops(request), model, read, owner_of(request))
    entries, blobs = await off_loop(decoded.values <= SMALL_ANSWER, _outputs, model, read, decoded)
    answer: dict[str, object] = {
        "model_name": model.spec.name,
        "model_version": str(model.spec.version),
    }
    if read.request.id is not None:
        answer["id"] = read.request.id
    answer["outputs"] = entries
    head = await serialised(answer)
    if not blobs:
        return Response(head, media_type="application/json")
    return Response(
        b"".join([head, *blobs]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(head))},
    )


def _read(model: LoadedModel, raw: bytes, header_length: str | None, settings: Settings) -> Read:
    header, binary = split_body(raw, header_length)
    check_prefix(model, header, settings)
    return read_request(model, parse_bytes(header, InferenceRequest), binary, settings)


def _outputs(
    model: LoadedModel, read: Read, decoded: Decoded
) -> tuple[list[dict[str, Any]], list[bytes]]:
    return encode_outputs(outputs(model, read, decoded), read.wanted.binary)


BINARY = {"schema": {"type": "string", "format": "binary"}}
INFER: dict[str, Any] = {
    "response_model": InferenceResponse,
    "response_model_exclude_none": True,
    "responses": {
        200: {
            "description": "the outputs; with binary outputs (binary_data_output, or an "
            "output's binary_data) the body is a JSON header of "
            "Inference-Header-Content-Length bytes, then their raw data",
            "content": {"application/octet-stream": BINARY},
            "headers": {
                HEADER_LENGTH: {
                    "description": "with binary outputs: the length of the JSON header",
                    "schema": {"type": "integer", "minimum": 0},
                }
            },
        },
        **plain(400, 404, 413, 429, 503),
    },
    "openapi_extra": _infer_body(),
}


@router.post("/models/{model_name}/infer", **INFER)
async def model_infer(model_name: str, request: Request) -> Response:
    return await _infer(request, model_name, None)


@router.post("/models/{model_name}/versions/{model_version}/infer", **INFER)
async def version_infer(model_name: str, model_version: str, request: Request) -> Response:
    return await _infer(request, model_name, model_version)
