"""The answers the middleware gives before any route runs, in every operation's
OpenAPI responses: 403 (Origin), 400 (Host, when SERVICE_ALLOWED_HOSTS is set) and
401 (when API keys are on)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.api.auth import OPEN_PATHS, STATS_PATHS
from service.api.origins import UNCHECKED_HOST_PATHS

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


def _response(description: str) -> dict[str, Any]:
    return {"description": description, "content": ERROR}


def document_guards(app: FastAPI, keys_on: bool, hosts_on: bool, protect_stats: bool) -> None:
    build = app.openapi
    open_paths = OPEN_PATHS if protect_stats else OPEN_PATHS | STATS_PATHS

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.setdefault(
                    "403", _response("origin_not_allowed: Origin not in SERVICE_CORS_ORIGINS")
                )
                if hosts_on and path not in UNCHECKED_HOST_PATHS:
                    responses.setdefault(
                        "400", _response("invalid_host: Host not in SERVICE_ALLOWED_HOSTS")
                    )
                if keys_on and path not in open_paths:
                    responses.setdefault(
                        "401", _response("unauthorized: no API key, or not a valid one")
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
