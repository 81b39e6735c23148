"""The OpenAPI document, made to say what the server does (tests/integration/
test_schemathesis.py checks it with every schemathesis check). FastAPI builds it from
the routes; `install` completes it once per app, from the app's settings:

- the answers no route declares because the middleware or the framework gives them:
  403 (Origin; on the admin routes with API keys on, also a key SERVICE_ADMIN_KEYS
  does not name), 400 (Host, when SERVICE_ALLOWED_HOSTS is set), 401 (when API keys are
  on), 413 (body size) on operations with a body, invalid input (422; 400 on the
  paths of the Open Inference Protocol and TF Serving) on operations with a body, a
  query or a header (in place of FastAPI's HTTPValidationError, never sent here), 404
  on paths with parameters, and 500 (a bug) everywhere;
- every error answer with its body (ErrorBody; PlainError on those paths), an example
  and the headers the server always sends with it (Retry-After, WWW-Authenticate), and
  every answer with X-Request-ID;
- the limits that are settings (`x-settings` in service/wire/native.py) with this app's
  values, and the request bodies' definitions as components;
- with API keys on, the security schemes and the operations that need a key.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.api.docs.responses import ADMIN_PREFIX, HEADERS, example, meaning
from service.api.errors import answers_plain
from service.api.middleware.auth import OPEN_PATHS, STATS_PATHS
from service.api.middleware.origins import UNCHECKED_HOST_PATHS, split_list
from service.config import Settings
from service.wire.native import SETTINGS_KEY

REF = "#/components/schemas/"
ERROR_SCHEMAS = {REF + "ErrorBody", REF + "PlainError"}
# FastAPI's 422 body, which this server never sends (service/errors.py)
FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
# on every answer (service/api/middleware/observe.py)
REQUEST_ID = {
    "X-Request-ID": {
        "description": "the client's X-Request-ID if it is 1-128 printable ASCII characters "
        "without spaces, else a new one; the server's log lines about the request carry it",
        "required": True,
        "schema": {"type": "string", "pattern": "^[!-~]{1,128}$"},
    }
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


# OpenAPI 3.1 has no way to describe a WebSocket: the sessions tag says it in words
TAGS = [
    {
        "name": "sessions",
        "description": "A session keeps one client's decoder state between requests. Its "
        "steps and generates can also go over one WebSocket, `GET /v1/sessions/{session_id}"
        "/ws` (not listed below: OpenAPI cannot describe a WebSocket). Each text message is "
        "a step or generate body as below, plus `op` (`step`, the default, or `generate`), an "
        "optional `id` echoed in the answer and an optional `idempotency_key` (the "
        "Idempotency-Key header's rule); each answer is the HTTP answer's body with the `id`, "
        "in order; an error is the HTTP error body with `id` and `status`, and the connection "
        "stays open. The upgrade request needs the same API key and passes the same Origin "
        'check. The protocol: docs/sessions.md ("Steps over a WebSocket").',
    }
]


def install(app: FastAPI, settings: Settings, keys_on: bool) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build(), settings, keys_on)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(schema: dict[str, Any], settings: Settings, keys_on: bool) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    definitions = components.setdefault("schemas", {})
    for name in FASTAPI_VALIDATION:
        definitions.pop(name, None)
    hosts_on = bool(split_list(settings.allowed_hosts))
    open_paths = OPEN_PATHS if settings.protect_stats else OPEN_PATHS | STATS_PATHS
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            guarded = keys_on and path not in open_paths
            statuses = _shared_statuses(path, operation, hosts_on, guarded)
            responses = operation.setdefault("responses", {})
            for status in statuses:
                responses.setdefault(str(status), {})
            admin = guarded and path.startswith(ADMIN_PREFIX)
            for status, response in responses.items():
                if int(status) >= 400:
                    _document_error(int(status), path, response, settings, admin)
                response["headers"] = {**response.get("headers", {}), **REQUEST_ID}
            operation["responses"] = dict(sorted(responses.items()))
            _hoist_definitions(operation, definitions)
            if guarded:
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
    if keys_on:
        components["securitySchemes"] = SECURITY_SCHEMES
    schema["tags"] = TAGS
    _fill_settings(schema, settings)
    return schema


def _shared_statuses(
    path: str, operation: dict[str, Any], hosts_on: bool, guarded: bool
) -> list[int]:
    """The statuses an operation can answer whatever its route does."""
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's; re-added below where input can be invalid
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    # the connection itself (api/http_protocol.py) answers these on any path: headers
    # late or too large, and every connection busy at SERVICE_MAX_CONNECTIONS
    statuses = [403, 408, 431, 500, 503]
    if hosts_on and path not in UNCHECKED_HOST_PATHS:
        statuses.append(400)
    if guarded:
        statuses.append(401)
    if has_body:
        statuses.append(413)
    if has_body or any(p["in"] in ("query", "header") for p in parameters):
        statuses.append(400 if answers_plain(path) else 422)
    if any(p["in"] == "path" for p in parameters):
        statuses.append(404)
    return statuses


def _document_error(
    status: int, path: str, response: dict[str, Any], settings: Settings, admin: bool
) -> None:
    """The error body (unless the route documents its own, e.g. the probes' Health), an
    example and the headers that always come with it."""
    response.setdefault("description", meaning(status, path, admin))
    media = response.setdefault("content", {}).setdefault("application/json", {})
    ref = media.get("schema", {}).get("$ref")
    if ref is None or ref in ERROR_SCHEMAS:
        body = "PlainError" if answers_plain(path) else "ErrorBody"
        media["schema"] = {"$ref": REF + body}
        media["example"] = example(status, path, settings, admin)
    if status in HEADERS:
        response["headers"] = {**HEADERS[status], **response.get("headers", {})}


def _hoist_definitions(operation: dict[str, Any], definitions: dict[str, Any]) -> None:
    """A request body documented from a pydantic model (service/api/bodies/read.py) carries the
    models it refers to in `$defs`; they belong in the components."""
    content = operation.get("requestBody", {}).get("content", {})
    for media in content.values():
        for name, definition in media.get("schema", {}).pop("$defs", {}).items():
            if definitions.setdefault(name, definition) != definition:
                raise ValueError(f"two different schemas named {name}")


BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _fill_settings(node: Any, settings: Settings) -> None:
    """`x-settings: {"maxItems": "max_batch_size"}` -> `maxItems: 256` (this app's); and
    `minimum: 1.0` (FastAPI's OpenAPI model has float bounds) -> `minimum: 1`."""
    if isinstance(node, dict):
        for bound in BOUNDS:
            value = node.get(bound)
            if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
                node[bound] = int(value)
        keywords = node.pop(SETTINGS_KEY, None)
        for keyword, setting in (keywords or {}).items():
            node[keyword] = getattr(settings, setting)
            note = f"{keyword} is SERVICE_{setting.upper()}"
            node["description"] = (
                f"{node['description']} ({note})" if "description" in node else note
            )
        for value in node.values():
            _fill_settings(value, settings)
    elif isinstance(node, list):
        for value in node:
            _fill_settings(value, settings)
