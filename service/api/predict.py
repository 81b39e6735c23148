from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import EnginesDep, RegistryDep, SettingsDep
from service.dataplane.predict import predict
from service.errors import InvalidInput
from service.schemas import PredictRequest, PredictResponse

router = APIRouter(tags=["predict"])


def _no_body_model(request: PredictRequest) -> None:
    for field in ("model", "version"):
        if getattr(request, field) is not None:
            raise InvalidInput(
                f"{field}: the path already names the model; '{field}' is only for POST /predict",
                field=field,
            )


@router.post("/predict", response_model=PredictResponse, response_model_exclude_none=True)
async def predict_default(
    request: PredictRequest, registry: RegistryDep, engines: EnginesDep, settings: SettingsDep
) -> PredictResponse:
    model = registry.get(request.model, request.version)
    return await predict(model, engines, request, settings)


@router.post(
    "/v1/models/{name}/predict", response_model=PredictResponse, response_model_exclude_none=True
)
async def predict_model(
    name: str,
    request: PredictRequest,
    registry: RegistryDep,
    engines: EnginesDep,
    settings: SettingsDep,
) -> PredictResponse:
    _no_body_model(request)
    return await predict(registry.get(name), engines, request, settings)


@router.post(
    "/v1/models/{name}/versions/{version}/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
)
async def predict_version(
    name: str,
    version: str,
    request: PredictRequest,
    registry: RegistryDep,
    engines: EnginesDep,
    settings: SettingsDep,
) -> PredictResponse:
    _no_body_model(request)
    return await predict(registry.get(name, version), engines, request, settings)
