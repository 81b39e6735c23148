"""The domain's errors: what went wrong, said in the domain's words.

Each carries a `code` (stable, for clients), a message, the request `field` it is about
and, where trying again later can help, `retry_after` seconds. Nothing here knows HTTP:
`service/api/errors.py` turns them into answers (a status per error class, the
`Retry-After` header, the body shape of the protocol that serves the path).
"""

from __future__ import annotations


class ServiceError(Exception):
    code = "internal_error"

    def __init__(self, message: str, field: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after = retry_after


class InvalidInput(ServiceError):
    code = "invalid_input"


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class AnswerNotKept(Conflict):
    """A retry of a change that was applied but whose answer was not kept (over the
    session's byte budget for remembered answers): refused, never applied again."""

    code = "idempotency_answer_too_large"


class CapacityExceeded(ServiceError):
    code = "capacity_exceeded"


class NotReady(ServiceError):
    code = "not_ready"


class StoreUnavailable(ServiceError):
    code = "session_store_unavailable"


class Overloaded(ServiceError):
    code = "overloaded"


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"


class SessionCorrupt(ServiceError):
    """A stored session record that cannot be used: gone for good (retrying cannot
    help; deleting it removes it, a new session starts afresh)."""

    code = "session_corrupt"


class VersionGone(ServiceError):
    """A session whose model version this server no longer serves (removed from the
    store): retrying cannot help; a new session uses the current version."""

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
