"""Idempotency-Key: a change sent again with the same key gets the first answer.

A request's fingerprint is a hash of the operation and its body, so the same key
reused for a different request is recognised (422) instead of silently answered with
another request's result. Answers are kept by the session store together with the
change itself (sessions/base.py `SessionStore.save`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from service.errors import InvalidInput, shown

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Idempotency:
    key: str
    fingerprint: bytes


@dataclass(frozen=True)
class Answer:
    """A change's answer as sent: the JSON body, its status, and whether it is a
    replay of an earlier request's answer."""

    body: bytes
    status: int = 200
    replayed: bool = False


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
