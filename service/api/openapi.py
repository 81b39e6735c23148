"""The answers the middleware gives before any route runs, in every operation's
OpenAPI responses: 403 (Origin), 400 (Host, when SERVICE_ALLOWED_HOSTS is set) and
401 (when API keys are on). On the paths of the Open Inference Protocol and TF Serving
their body is {"error": "<message>"}, and FastAPI's 422 is dropped: invalid input is a
400 there (service/errors.py)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.api.auth import OPEN_PATHS, STATS_PATHS
from service.api.origins import UNCHECKED_HOST_PATHS
from service.errors import plain_errors

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
PLAIN_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/PlainError"}}}


def _response(description: str, plain: bool = False) -> dict[str, Any]:
    return {"description": description, "content": PLAIN_ERROR if plain else ERROR}


def document_guards(app: FastAPI, keys_on: bool, hosts_on: bool, protect_stats: bool) -> None:
    build = app.openapi
    open_paths = OPEN_PATHS if protect_stats else OPEN_PATHS | STATS_PATHS

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            plain = plain_errors(path)
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if plain:
                    responses.pop("422", None)
                responses.setdefault(
                    "403",
                    _response("origin_not_allowed: Origin not in SERVICE_CORS_ORIGINS", plain),
                )
                if hosts_on and path not in UNCHECKED_HOST_PATHS:
                    responses.setdefault(
                        "400", _response("invalid_host: Host not in SERVICE_ALLOWED_HOSTS", plain)
                    )
                if keys_on and path not in open_paths:
                    responses.setdefault(
                        "401", _response("unauthorized: no API key, or not a valid one", plain)
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
