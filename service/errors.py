"""One error family carrying its HTTP status, and the handlers that render it.

Every error body has the same shape:
    {"error": {"code": "invalid_input", "message": "...", "field": "inputs[0][2]"}}
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("service")


class ServiceError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self, message: str, field: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers


class InvalidInput(ServiceError):
    status = 422
    code = "invalid_input"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class CapacityExceeded(ServiceError):
    status = 429
    code = "capacity_exceeded"


class NotReady(ServiceError):
    status = 503
    code = "not_ready"


class StoreUnavailable(ServiceError):
    status = 503
    code = "session_store_unavailable"


class Overloaded(ServiceError):
    status = 503
    code = "overloaded"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class SessionCorrupt(ServiceError):
    """A stored session record that cannot be used. 410: the session is gone for good
    (retrying cannot help; DELETE removes it, a new session starts afresh)."""

    status = 410
    code = "session_corrupt"


class VersionGone(ServiceError):
    """A session whose model version this server no longer serves (removed from the
    store). 410: retrying cannot help; a new session uses the current version."""

    status = 410
    code = "model_version_gone"


class ComputeFailed(ServiceError):
    """A model computation failed with something other than an ordinary exception."""

    code = "compute_failed"


def shown(value: object, limit: int = 40) -> str:
    """A client's value quoted in a message, kept short whatever was sent (and never
    `str()` of a huge int, which Python refuses beyond 4,300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _body(code: str, message: str, field: str | None) -> dict[str, dict[str, str]]:
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def _field(loc: tuple[int | str, ...]) -> str:
    """('body', 'inputs', 0, 2) -> 'inputs[0][2]'."""
    # "tokens"/"text": which form of a tokens-or-text field was checked (schemas.py)
    parts = [p for p in loc if p not in ("body", "query", "path", "tokens", "text")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def error_response(exc: ServiceError) -> JSONResponse:
    return JSONResponse(_body(exc.code, exc.message, exc.field), exc.status, headers=exc.headers)


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        detail = errors[0].get("ctx", {}).get("error", "invalid JSON")
        return JSONResponse(_body("invalid_json", f"body: not valid JSON ({detail})", "body"), 422)
    if errors and tuple(errors[0].get("loc", ())) == ("body",):
        return JSONResponse(
            _body(
                "invalid_input",
                "body: expected a JSON object (send it with Content-Type: application/json)",
                "body",
            ),
            422,
        )
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _field(tuple(first.get("loc", ())))
    messages = []
    for err in errors[:5]:
        where = _field(tuple(err.get("loc", ())))
        messages.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return JSONResponse(_body("invalid_input", "; ".join(messages) + more, field), 422)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(_body(code, str(exc.detail), None), exc.status_code, headers=exc.headers)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse(_body("internal_error", "internal server error", None), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
