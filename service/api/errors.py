"""Errors as HTTP answers: a status per error class, `Retry-After`, and the body shape of
the protocol that serves the path.

Every error body of the native API has the same shape:
    {"error": {"code": "invalid_input", "message": "...", "field": "inputs[0][2]"}}
The Open Inference Protocol (/v2) and TF Serving's REST API (`:predict`, `/metadata`)
answer as their specifications say: {"error": "<message>"}, and 400 for invalid input.
Which paths answer that way is declared by those protocols' routers (`declare_plain`),
for the paths they serve and the ones under them that they do not (an unknown verb).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, compile_path

from service import errors as domain

log = logging.getLogger("service")


class HttpError(domain.ServiceError):
    """An error only HTTP has (a missing key, a refused origin, a slow client): its
    status is its own."""

    status: ClassVar[int] = 400


STATUS: dict[type[domain.ServiceError], int] = {
    domain.InvalidInput: 422,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.CapacityExceeded: 429,
    domain.NotReady: 503,
    domain.StoreUnavailable: 503,
    domain.Overloaded: 503,
    domain.PayloadTooLarge: 413,
    domain.SessionCorrupt: 410,
    domain.VersionGone: 410,
}


def status_of(exc: domain.ServiceError) -> int:
    if isinstance(exc, HttpError):
        return exc.status
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def retry_header(seconds: float) -> dict[str, str]:
    """Retry-After in whole seconds (RFC 9110), never 0 for a wait that is not nothing."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


_plain: list[re.Pattern[str]] = []


def declare_plain(*paths: str) -> None:
    """A protocol's router: errors at these paths (Starlette path templates) answer
    {"error": "<message>"}, and 400 for invalid input."""
    # DOTALL: a path may hold any character once decoded (%0A is a newline), and
    # `{rest:path}` must still cover it
    _plain.extend(re.compile(compile_path(path)[0].pattern, re.DOTALL) for path in paths)


def answers_plain(path: str) -> bool:
    """True where a router declared the plain error shape for the path."""
    return any(pattern.match(path) for pattern in _plain)


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
    if answers_plain(path):
        # both specifications answer invalid input with 400 Bad Request
        return JSONResponse({"error": message}, 400 if status == 422 else status, headers=headers)
    return JSONResponse(_body(code, message, field), status, headers=headers)


def error_response(
    exc: domain.ServiceError, path: str = "", headers: dict[str, str] | None = None
) -> JSONResponse:
    if exc.retry_after is not None:
        headers = {**(headers or {}), **retry_header(exc.retry_after)}
    return render(path, status_of(exc), exc.code, exc.message, exc.field, headers)


def _field(loc: tuple[int | str, ...]) -> str:
    """('body', 'inputs', 0, 2) -> 'inputs[0][2]'."""
    # "tokens"/"text": which form of a tokens-or-text field was checked (wire/native.py)
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


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, domain.ServiceError)
    return error_response(exc, _path(request))


def explain_validation(errors: Sequence[Any]) -> tuple[str, str, str]:
    """A validation error's (code, message, field), as the 422 answer and a WebSocket
    error message (api/native/session_socket.py) say it."""
    if errors and errors[0].get("type") == "json_invalid":
        detail = errors[0].get("ctx", {}).get("error", "invalid JSON")
        return "invalid_json", f"body: not valid JSON ({detail})", "body"
    if errors and tuple(errors[0].get("loc", ())) == ("body",):
        message = "body: expected a JSON object (send it with Content-Type: application/json)"
        return "invalid_input", message, "body"
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = _field(tuple(first.get("loc", ())))
    messages = []
    for err in errors[:5]:
        where = _field(tuple(err.get("loc", ())))
        messages.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid_input", "; ".join(messages) + more, field


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    code, message, field = explain_validation(exc.errors())
    return render(_path(request), 422, code, message, field)


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
    app.add_exception_handler(domain.ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
