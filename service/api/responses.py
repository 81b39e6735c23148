"""The error statuses a route can answer, for the OpenAPI schema, all with one body."""

from __future__ import annotations

from typing import Any

from service.oip_schemas import PlainError
from service.schemas import ErrorBody

_MEANING = {
    404: "unknown model, version or session (sessions also once expired)",
    409: "conflict: nothing to feed back yet, or another change saved first (retry)",
    410: "session_corrupt: the stored session cannot be used; delete it",
    413: "request body over SERVICE_MAX_BODY_BYTES",
    422: "invalid input or over a configured limit; names the field and what is allowed",
    429: "session cap reached; Retry-After",
    503: "models loading, queue full, session store down or batch worker stopped; Retry-After",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorBody, "description": _MEANING[s]} for s in statuses}


def plain(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For the Open Inference Protocol's and TF Serving's paths: the body there is
    {"error": "<message>"}, and invalid input is a 400 (422 elsewhere)."""
    meaning = {**_MEANING, 400: _MEANING[422]}
    return {s: {"model": PlainError, "description": meaning[s]} for s in statuses}
