"""The smallest wire types, shared by every protocol's schemas: tokens, and JSON Schema
keywords filled in from the settings."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import GetPydanticSchema, WithJsonSchema
from pydantic_core import core_schema

SETTINGS_KEY = "x-settings"
FLOAT32_MAX = 3.4028234663852886e38


def from_settings(**keywords: str) -> dict[str, Any]:
    """JSON Schema keywords whose values are the app's settings, e.g.
    `from_settings(maxItems="max_batch_size")`: filled in when the app builds its OpenAPI
    document (service/api/docs/openapi.py), so the schema states the limits the server
    enforces with the values it enforces."""
    return {SETTINGS_KEY: keywords}


# Validated by pydantic-core alone (no Python call per token: 600,000 tokens parse in
# ~40 ms instead of ~120 ms, and a wrong one costs no more than a right one). Strict: a
# bool, a float (2.0 included) or null is not a token.
_TOKEN_SCHEMA = core_schema.union_schema(
    [core_schema.int_schema(strict=True), core_schema.str_schema(strict=True)],
    custom_error_type="token_type",
    custom_error_message="a token must be an integer id or a vocabulary string (not a "
    "float such as 2.0, a boolean or null)",
)

Token = Annotated[
    int | str,
    GetPydanticSchema(lambda _type, _handler: _TOKEN_SCHEMA),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}),
]
