"""Idempotency-Key: a change sent again with the same key gets the first answer.

A request's fingerprint is a hash of the operation and its body, so the same key
reused for a different request is recognised (422) instead of silently answered with
another request's result. Answers are kept by the session store together with the
change itself (sessions/base.py `SessionStore.save`), within a byte budget per session:
an answer that did not fit is kept as a marker (its key and fingerprint), so that its
retry is refused with 409 rather than applied a second time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from service.errors import AnswerNotKept, InvalidInput, shown

MAX_KEY_LENGTH = 255
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Idempotency:
    key: str
    fingerprint: bytes


@dataclass(frozen=True)
class Answer:
    """A change's answer: the JSON body as sent (and stored for a retry), the answer
    itself when it was made by this request, and whether it is a replay of an earlier
    request's answer (only the body is kept for those)."""

    body: bytes
    value: BaseModel | None = None
    replayed: bool = False

    def parsed(self, kind: type[M]) -> M:
        """The answer as `kind`: the one made, or a replay's body read back."""
        if isinstance(self.value, kind):
            return self.value
        return kind.model_validate_json(self.body)


def idempotency(key: str | None, operation: str, body: bytes) -> Idempotency | None:
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidInput(
            f"Idempotency-Key: {shown(key)} is not 1 to {MAX_KEY_LENGTH} printable ASCII "
            "characters (a UUID is a good key)",
            field="Idempotency-Key",
        )
    digest = hashlib.sha256(operation.encode() + b"\0" + body).digest()
    return Idempotency(key, digest)


def reused(key: str) -> InvalidInput:
    return InvalidInput(
        f"Idempotency-Key {shown(key)} was already used on this session for a different "
        "request; send a new key with a new request",
        field="Idempotency-Key",
    )


def not_kept(key: str, budget: int) -> AnswerNotKept:
    return AnswerNotKept(
        f"Idempotency-Key {shown(key)}: the change was applied (once; not again now), but "
        "its answer is too large to replay: the answers kept per session are limited to "
        f"{budget:,} bytes (SERVICE_IDEMPOTENCY_MAX_BYTES_PER_SESSION) and this one did not "
        "fit; GET the session to see where it stands",
        field="Idempotency-Key",
    )
