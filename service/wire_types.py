"""The smallest wire types, shared by every protocol's schemas: tokens, and JSON Schema
keywords filled in from the settings."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema

SETTINGS_KEY = "x-settings"
FLOAT32_MAX = 3.4028234663852886e38


def from_settings(**keywords: str) -> dict[str, Any]:
    """JSON Schema keywords whose values are the app's settings, e.g.
    `from_settings(maxItems="max_batch_size")`: filled in when the app builds its OpenAPI
    document (service/api/openapi.py), so the schema states the limits the server
    enforces with the values it enforces."""
    return {SETTINGS_KEY: keywords}


def _token(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"a token must be an integer id or a vocabulary string, got {type(value).__name__}"
        )
    return value


Token = Annotated[
    int | str,
    PlainValidator(_token),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}),
]
