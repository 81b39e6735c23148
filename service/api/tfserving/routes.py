"""TF Serving's REST API: `:predict` and `/metadata` (the model status is the native
GET /v1/models/{name}, which carries `model_version_status`). Errors answer
{"error": "<message>"} (service/api/errors.py), declared here for every path of the
protocol, including verbs it does not serve. Included before the models router."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from service.api.bodies.read import documented, parse
from service.api.bodies.write import json_answer
from service.api.deps import RegistryDep, predictor
from service.api.docs.responses import plain
from service.api.errors import declare_plain
from service.api.paths import PathSegment  # and the {...:segment} path convertor
from service.dataplane import tfserving
from service.wire.tfserving import (
    TFColumnarResponse,
    TFMetadataResponse,
    TFPredictRequest,
    TFRowResponse,
)

router = APIRouter(prefix="/v1/models", tags=["tf-serving"])
# any name, even one the routes cannot serve (a ':' in it): still this protocol's path
declare_plain(
    "/v1/models/{name}:{verb}",
    "/v1/models/{name}/versions/{version}:{verb}",
    "/v1/models/{name}/metadata",
    "/v1/models/{name}/versions/{version}/metadata",
)
PREDICT: dict[str, Any] = {
    "response_model": TFRowResponse | TFColumnarResponse,
    "openapi_extra": documented(TFPredictRequest),
    "responses": plain(400, 404, 413, 503),
}
METADATA: dict[str, Any] = {
    "response_model": TFMetadataResponse,
    "responses": plain(404, 503),
}


async def _predict(request: Request, name: str, version: str | None) -> Response:
    ops = predictor(request)
    model = ops.model(name, version)  # an unknown model is a 404 whatever the body
    body = await parse(request, TFPredictRequest)
    return await json_answer(await tfserving.predict(ops, model, body))


@router.post("/{name:segment}:predict", **PREDICT)
async def tf_predict(name: PathSegment, request: Request) -> Response:
    return await _predict(request, name, None)


@router.post("/{name:segment}/versions/{version:segment}:predict", **PREDICT)
async def tf_predict_version(name: PathSegment, version: PathSegment, request: Request) -> Response:
    return await _predict(request, name, version)


@router.get("/{name:segment}/metadata", **METADATA)
async def tf_metadata(name: PathSegment, registry: RegistryDep) -> TFMetadataResponse:
    return tfserving.metadata(registry.get(name).spec)


@router.get("/{name:segment}/versions/{version:segment}/metadata", **METADATA)
async def tf_metadata_version(
    name: PathSegment, version: PathSegment, registry: RegistryDep
) -> TFMetadataResponse:
    return tfserving.metadata(registry.get(name, version).spec)
