"""The error answers, for the OpenAPI document: what each status means, an example body
and the headers that always come with it. Routes list the statuses only they can
answer (`errors(404, 409)`); service/api/docs/openapi.py adds the ones every route shares
and fills in bodies, examples and headers from here."""

from __future__ import annotations

from typing import Any

from service.api.errors import answers_plain
from service.config import Settings
from service.wire.native import ErrorBody
from service.wire.oip import PlainError

_MEANING = {
    400: "invalid_host: Host not in SERVICE_ALLOWED_HOSTS",
    401: "unauthorized: no API key, or not a valid one",
    403: "origin_not_allowed: Origin not in SERVICE_CORS_ORIGINS",
    404: "unknown model, version or session (sessions also once expired)",
    409: "conflict: nothing to feed back yet, or another change saved first (retry); "
    "idempotency_answer_too_large: a retried change was applied, its answer was not kept",
    408: "request_timeout: headers not complete within SERVICE_HEADER_TIMEOUT_SECONDS, or "
    "the body within SERVICE_BODY_TIMEOUT_SECONDS; the connection closes",
    410: "session_corrupt: the stored session cannot be used; delete it",
    413: "request body over SERVICE_MAX_BODY_BYTES",
    422: "invalid input or over a configured limit; names the field and what is allowed",
    429: "session cap reached; Retry-After",
    431: "headers_too_large: request line and headers over SERVICE_MAX_HEADER_BYTES",
    500: "internal_error or compute_failed: a bug, logged; the next request is served as usual",
    503: "models loading, queue full, session store down, batch worker stopped, or "
    "too_many_connections (SERVICE_MAX_CONNECTIONS, each busy); Retry-After",
}
# the admin routes with API keys on (service/api/middleware/auth.py): a key not named there
ADMIN_PREFIX = "/v1/admin/"
_ADMIN_MEANING = {
    403: "forbidden: the API key is not one of SERVICE_ADMIN_KEYS (none named: every key); "
    + _MEANING[403],
}
# the Open Inference Protocol's and TF Serving's paths: invalid input is a 400 there
_PLAIN_MEANING = {
    **_MEANING,
    400: "invalid input or over a configured limit; names the field and what is allowed",
}

RETRY_AFTER = {
    "description": "seconds to wait before retrying",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "the scheme to use: Bearer",
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer "},
        }
    },
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": RETRY_AFTER},
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _MEANING[s]} for s in statuses}


def plain(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For the Open Inference Protocol's and TF Serving's paths: the body there is
    {"error": "<message>"}, and invalid input is a 400 (422 elsewhere)."""
    return {s: {"model": PlainError, "description": _PLAIN_MEANING[s]} for s in statuses}


def meaning(status: int, path: str, admin: bool = False) -> str:
    """`admin`: a route of ADMIN_PREFIX with API keys on."""
    if admin and status in _ADMIN_MEANING:
        return _ADMIN_MEANING[status]
    return (_PLAIN_MEANING if answers_plain(path) else _MEANING)[status]


_SESSION = "'xB9gBcbm4Uo3Yqk0jZ1Xq0y7bKp2Jt5E'"
# realistic answers: (code, message, field); "session" ones on the session routes,
# "admin" ones on the admin routes with API keys on
_EXAMPLES: dict[int | tuple[int, str], tuple[str, str, str | None]] = {
    400: ("invalid_host", "Host 'evil.example' is not served here (SERVICE_ALLOWED_HOSTS)", "Host"),
    401: (
        "unauthorized",
        "an API key is required: send 'Authorization: Bearer <key>' (or 'X-API-Key: <key>')",
        "Authorization",
    ),
    403: (
        "origin_not_allowed",
        "requests from web pages at 'https://evil.example' are not allowed; allowed origins "
        "(SERVICE_CORS_ORIGINS): none are configured",
        "Origin",
    ),
    404: ("not_found", "model 'half' not found; available models: dates, memory, reverse", "model"),
    (404, "session"): (
        "not_found",
        f"session {_SESSION} not found (unknown or expired)",
        "session_id",
    ),
    409: ("conflict", "reloading is off: this app was given its models, not a model store", None),
    (409, "session"): (
        "conflict",
        f"session {_SESSION} has no previous output to feed back: step at least one input first",
        "session_id",
    ),
    410: (
        "session_corrupt",
        f"session {_SESSION} cannot be used: its stored record is corrupt or was written for "
        "another model (details logged); delete it and create a new session",
        "session_id",
    ),
    413: (
        "payload_too_large",
        "body: {over:,} bytes exceeds the limit of {limit:,} bytes (SERVICE_MAX_BODY_BYTES)",
        "body",
    ),
    422: (
        "invalid_input",
        "inputs[0][1]: token 99 is out of range; allowed: integers 0..50",
        "inputs[0][1]",
    ),
    (422, "session"): (
        "invalid_input",
        "inputs[1]: token 99 is out of range; allowed: integers 0..4",
        "inputs[1]",
    ),
    (403, "admin"): (
        "forbidden",
        "this API key may not use the admin routes (/v1/admin/*): only the keys named in "
        "SERVICE_ADMIN_KEYS may",
        "Authorization",
    ),
    429: (
        "capacity_exceeded",
        "session capacity reached ({sessions} live sessions); delete unused sessions or retry "
        "after 120 s when idle ones expire",
        None,
    ),
    408: (
        "request_timeout",
        "request headers not complete within {header_timeout:g} s (SERVICE_HEADER_TIMEOUT_SECONDS)",
        None,
    ),
    431: (
        "headers_too_large",
        "request line and headers exceed {max_header:,} bytes (SERVICE_MAX_HEADER_BYTES)",
        None,
    ),
    500: ("internal_error", "internal server error", None),
    503: ("not_ready", "models are still loading", None),
}
_PLAIN_INVALID = {
    "/v2/health": "not ready: loading models",
    "/v2": "inputs[0]: 7 values, but shape [1, 6] holds 6",
    "/v1": "instances[0][1]: token 99 is out of range; allowed: integers 0..50",
}


def example(status: int, path: str, settings: Settings, admin: bool = False) -> dict[str, Any]:
    """An error body as the server sends it for `status` on `path` (`admin`: a route of
    ADMIN_PREFIX with API keys on)."""
    variant = "admin" if admin else "session" if "{session_id}" in path else ""
    key = (status, variant)
    code, message, field = _EXAMPLES[key if key in _EXAMPLES else status]
    message = message.format(
        over=settings.max_body_bytes + 1,
        limit=settings.max_body_bytes,
        sessions=settings.max_sessions,
        header_timeout=settings.header_timeout_seconds,
        max_header=settings.max_header_bytes,
    )
    if answers_plain(path):
        if status == 400:
            message = next(m for p, m in _PLAIN_INVALID.items() if path.startswith(p))
        return {"error": message}
    detail = {"code": code, "message": message}
    if field is not None:
        detail["field"] = field
    return {"error": detail}
