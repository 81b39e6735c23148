from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api.bodies.read import documented, parse
from service.api.bodies.write import json_answer
from service.api.deps import predictor
from service.api.docs.responses import errors
from service.api.native import sse
from service.dataplane.streams import stream_predict
from service.errors import InvalidInput
from service.wire.native import ModelPredictRequest, PredictRequest, PredictResponse

router = APIRouter(tags=["predict"])
ROUTE = {
    "response_model": PredictResponse,
    "response_model_exclude_none": True,
    "responses": {**errors(404, 503), **sse.documented("PredictResponse")},
}


async def _body(request: Request, path_names_model: bool) -> PredictRequest:
    body = await parse(request, PredictRequest)
    for field in ("model", "version"):
        if path_names_model and field in body.model_fields_set:  # even null: not in its schema
            raise InvalidInput(
                f"{field}: the path already names the model; '{field}' is only for POST /predict",
                field=field,
            )
    return body


async def _answer(
    request: Request, name: str | None, version: str | int | None, body: PredictRequest
) -> Response:
    if body.stream:
        connection = sse.Connection()
        events = stream_predict(predictor(request), name, version, body, connection.alive)
        return await sse.start(events, connection)
    return await json_answer(await predictor(request).predict(name, version, body))


@router.post("/predict", openapi_extra=documented(PredictRequest), **ROUTE)  # type: ignore[arg-type]
async def predict_default(request: Request) -> Response:
    body = await _body(request, path_names_model=False)
    return await _answer(request, body.model, body.version, body)


@router.post("/v1/models/{name}/predict", openapi_extra=documented(ModelPredictRequest), **ROUTE)  # type: ignore[arg-type]
async def predict_model(name: str, request: Request) -> Response:
    body = await _body(request, path_names_model=True)
    return await _answer(request, name, None, body)


@router.post(
    "/v1/models/{name}/versions/{version}/predict",
    openapi_extra=documented(ModelPredictRequest),
    **ROUTE,  # type: ignore[arg-type]
)
async def predict_version(name: str, version: str, request: Request) -> Response:
    body = await _body(request, path_names_model=True)
    return await _answer(request, name, version, body)
