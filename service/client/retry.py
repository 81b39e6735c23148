"""When to send a request again, and after how long. Shared by both clients.

Sent again, at most `retries` times: an answer 429 or 503 (the server refused; nothing
was applied), waiting its `Retry-After` capped by `max_wait`; and a connection failure,
when the request never left (the connection could not be opened), or when the call is
safe to send again (reads, predict, session changes with their Idempotency-Key, delete).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import NoReturn

import httpx

from service.client.calls import Call
from service.client.errors import ConnectionFailed, from_answer

RETRY_STATUSES = frozenset({429, 503})
# the request never reached the server
NOT_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)
NEVER_RETRIED: tuple[type[httpx.TransportError], ...] = (httpx.UnsupportedProtocol,)
BACKOFF = 0.2  # seconds before the first retry without Retry-After; doubled each time


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    max_wait: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.max_wait < 0:
            raise ValueError("retries and max_retry_wait must be >= 0")

    def wait(self, retry: int, headers: httpx.Headers | None = None) -> float:
        """Seconds before retry number `retry` (from 1)."""
        advised = retry_after(headers) if headers is not None else None
        wait = BACKOFF * 2 ** (retry - 1) if advised is None else advised
        return max(0.0, min(wait, self.max_wait))


def retry_after(headers: httpx.Headers) -> float | None:
    """`Retry-After` in seconds: a number of seconds or an HTTP date."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


class Attempts:
    """The attempts of one call: each outcome says wait and retry, accept, or raise."""

    def __init__(self, policy: RetryPolicy, call: Call, base_url: str) -> None:
        self.policy = policy
        self.call = call
        self.base_url = base_url
        self.retried = 0
        self.uncertain = False  # an attempt may have been applied, its answer lost

    def _next(self, headers: httpx.Headers | None = None) -> float | None:
        if self.retried >= self.policy.retries:
            return None
        self.retried += 1
        return self.policy.wait(self.retried, headers)

    def after_error(self, exc: httpx.TransportError) -> float:
        """The wait before the next attempt, or ConnectionFailed."""
        sent = not isinstance(exc, NOT_SENT)
        wait = None
        if not isinstance(exc, NEVER_RETRIED) and (self.call.resend_safe or not sent):
            wait = self._next()
        if wait is None:
            self.failed(exc)
        self.uncertain = self.uncertain or sent
        return wait

    def failed(self, exc: httpx.TransportError) -> NoReturn:
        reason = str(exc) or type(exc).__name__
        raise ConnectionFailed(
            f"{self.call.method} {self.base_url}{self.call.path}: {reason}"
        ) from exc

    def after_answer(self, response: httpx.Response) -> float | None:
        """None: the answer is the call's (a success, or a delete's 404 after a lost
        answer); else the wait before the next attempt. Raises the typed error when the
        answer is an error that is not retried, or retried too often already. An error
        answer's body must have been read."""
        status = response.status_code
        if status < 400 or (status == 404 and self.call.missing_is_done and self.uncertain):
            return None
        wait = self._next(response.headers) if status in RETRY_STATUSES else None
        if wait is None:
            raise from_answer(status, response.content, response.headers)
        return wait
