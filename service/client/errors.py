"""What the client raises. A server's error answer becomes a typed `ServiceError`,
chosen by the answer's code first (`service/errors.py` and `service/api/` name them),
then by its status; a failure to reach the server is a `ConnectionFailed`.

A request the server's own wire models refuse is never sent: that is pydantic's
`ValidationError`, raised before any I/O."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from service.wire.native import ErrorBody

MAX_TEXT = 500  # characters of a non-JSON error body kept in the message


class ClientError(Exception):
    """Everything the client raises about a request that was or could not be answered."""


class ConnectionFailed(ClientError):
    """The server could not be reached, or the connection broke before the answer."""


class ProtocolError(ClientError):
    """An answer that is not what the API documents (e.g. a stream without its result)."""


class ServiceError(ClientError):
    """An error answer: `{"error": {"code", "message", "field"}}` and its status."""

    status = 500  # the status this error comes with when none is known (a stream's error event)

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, code, message, field)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        return f"error {self.status} {self.code}: {self.message}"


class InvalidInput(ServiceError):
    """400/422: the message names the field (`field`) and what is allowed."""

    status = 422


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    """Unknown model, version or session (sessions also once expired, or another key's)."""

    status = 404


class Conflict(ServiceError):
    status = 409


class AnswerNotKept(Conflict):
    """A retried change (same Idempotency-Key) was applied once already, but its answer
    was too large to keep for a replay: read the session instead of retrying."""


class Gone(ServiceError):
    """410: the session cannot be used any more; delete it and create a new one."""

    status = 410


class SessionCorrupt(Gone):
    pass


class VersionGone(Gone):
    """The session's model version is no longer served."""


class PayloadTooLarge(ServiceError):
    status = 413


class RateLimited(ServiceError):
    """429: `Retry-After` (in `headers`) says when to try again."""

    status = 429


class SessionCapReached(RateLimited):
    """The server's (or the API key's) session cap: no new session until one expires."""


class InternalError(ServiceError):
    status = 500


class Unavailable(ServiceError):
    """503: loading, overloaded, session store down, session busy; `Retry-After` says when."""

    status = 503


class NotReady(Unavailable):
    pass


class Overloaded(Unavailable):
    """A model's queue is full."""


class StoreUnavailable(Unavailable):
    pass


BY_CODE: dict[str, type[ServiceError]] = {
    "invalid_input": InvalidInput,
    "invalid_json": InvalidInput,
    "invalid_host": InvalidInput,
    "unauthorized": Unauthorized,
    "origin_not_allowed": Forbidden,
    "not_found": NotFound,
    "conflict": Conflict,
    "idempotency_answer_too_large": AnswerNotKept,
    "forbidden": Forbidden,
    "session_corrupt": SessionCorrupt,
    "model_version_gone": VersionGone,
    "payload_too_large": PayloadTooLarge,
    "capacity_exceeded": SessionCapReached,
    "internal_error": InternalError,
    "compute_failed": InternalError,
    "not_ready": NotReady,
    "overloaded": Overloaded,
    "session_store_unavailable": StoreUnavailable,
}
BY_STATUS: dict[int, type[ServiceError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    422: InvalidInput,
    429: RateLimited,
    500: InternalError,
    503: Unavailable,
}


def error_for(
    status: int | None,
    code: str,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ServiceError:
    """The typed error for an answer; `status` None: the code's usual status."""
    kind = BY_CODE.get(code) or (BY_STATUS.get(status) if status is not None else None)
    kind = kind or ServiceError
    return kind(kind.status if status is None else status, code, message, field, headers)


def from_answer(status: int, content: bytes, headers: Mapping[str, str]) -> ServiceError:
    """The typed error for an error answer, whatever its body (a proxy's HTML page too)."""
    try:
        detail = ErrorBody.model_validate_json(content).error
    except ValidationError:
        text = content.decode("utf-8", errors="replace").strip()
        text = text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."
        return error_for(status, "http_error", text or f"HTTP {status}", None, headers)
    return error_for(status, detail.code, detail.message, detail.field, headers)


def from_event(data: str) -> ServiceError:
    """The typed error for a stream's `error` event (sent after the 200 status)."""
    try:
        detail = ErrorBody.model_validate_json(data).error
    except ValidationError as exc:
        raise ProtocolError(f"an error event that is not an error body: {data[:MAX_TEXT]}") from exc
    return error_for(None, detail.code, detail.message, detail.field)
