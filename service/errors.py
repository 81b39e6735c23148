"""One error family carrying its HTTP status, and the handlers that render it.

Every error body of the native API has the same shape:
    {"error": {"code": "invalid_input", "message": "...", "field": "inputs[0][2]"}}
The Open Inference Protocol (/v2) and TF Serving's REST API (`:predict`, `/metadata`)
answer as their specifications say: {"error": "<message>"}, and 400 for invalid input.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

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


class AnswerNotKept(Conflict):
    """A retry of a change that was applied but whose answer was not kept (over the
    session's byte budget for remembered answers): refused, never applied again."""

    code = "idempotency_answer_too_large"


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


# the paths of the protocols whose clients expect {"error": "<message>"}
_PLAIN_PATHS = re.compile(r"^/v2(/|$)|^/v1/models/[^/]+(/versions/[^/]+)?(:[a-z]+|/metadata)$")


def plain_errors(path: str) -> bool:
    """True where errors answer as the Open Inference Protocol and TF Serving say."""
    return _PLAIN_PATHS.match(path) is not None


def _body(code: str, message: str, field: str | None) -> dict[str, dict[str, str]]:
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def render(
    path: str,
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error answer in the shape the path's protocol expects."""
    if plain_errors(path):
        # both specifications answer invalid input with 400 Bad Request
        return JSONResponse({"error": message}, 400 if status == 422 else status, headers=headers)
    return JSONResponse(_body(code, message, field), status, headers=headers)


def _field(loc: tuple[int | str, ...]) -> str:
    """('body', 'inputs', 0, 2) -> 'inputs[0][2]'."""
    # "tokens"/"text": which form of a tokens-or-text field was checked (schemas.py)
    parts = [p for p in loc if p not in ("body", "query", "path", "tokens", "text")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _path(request: Request) -> str:
    """The path as the router saw it. Not `request.url.path`: building a URL drops tabs,
    CRs and LFs (urllib's WHATWG rule), so `/v1/models/x/versions/%0D:predict` would look
    like a native path and answer in the wrong error shape."""
    path: str = request.scope["path"]
    return path


def error_response(exc: ServiceError, path: str = "") -> JSONResponse:
    return render(path, exc.status, exc.code, exc.message, exc.field, exc.headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc, _path(request))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    path = _path(request)
    errors = exc.errors()
    if errors and errors[0].get("type") == "json_invalid":
        detail = errors[0].get("ctx", {}).get("error", "invalid JSON")
        return render(path, 422, "invalid_json", f"body: not valid JSON ({detail})", "body")
    if errors and tuple(errors[0].get("loc", ())) == ("body",):
        return render(
            path,
            422,
            "invalid_input",
            "body: expected a JSON object (send it with Content-Type: application/json)",
            "body",
        )
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _field(tuple(first.get("loc", ())))
    messages = []
    for err in errors[:5]:
        where = _field(tuple(err.get("loc", ())))
        messages.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return render(path, 422, "invalid_input", "; ".join(messages) + more, field)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    message = str(exc.detail)
    if exc.status_code == 405:
        # Starlette names only the first route matching the path; a path can have several
        allowed = _methods(request)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        message = f"{request.method} is not allowed here; allowed: {', '.join(allowed)}"
    return render(_path(request), exc.status_code, code, message, None, headers)


def _methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path."""
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"):
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return render(_path(request), 500, "internal_error", "internal server error")


# nginx's figure for "the client closed the request": in the access log and metrics only,
# since nobody is left to read it
CLIENT_GONE = 499


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client hung up before its body was complete: nothing went wrong here, so no
    traceback; one INFO line, and 499 in the access log."""
    log.info("request ended: the client went away before its body was complete")
    return Response(status_code=CLIENT_GONE)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
