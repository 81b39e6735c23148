"""A session: one client's recurrent state between requests, and where it is kept."""

from __future__ import annotations

import logging
import secrets
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import numpy as np

from service.errors import CapacityExceeded, SessionCorrupt, shown

log = logging.getLogger("service")


def new_session_id() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits


def capacity_exceeded(max_sessions: int, retry_seconds: int) -> CapacityExceeded:
    """What both stores answer at the cap (live sessions are never evicted)."""
    return CapacityExceeded(
        f"session capacity reached ({max_sessions} live sessions); delete unused sessions "
        f"or retry after {retry_seconds} s when idle ones expire",
        headers={"Retry-After": str(retry_seconds)},
    )


def corrupt_session(session_id: str, problem: str) -> SessionCorrupt:
    """What a stored record that cannot be used answers (410), logged with the detail.
    The record is left as it is for inspection; DELETE removes it."""
    log.error("session %s: stored record cannot be used: %s", session_id, problem)
    return SessionCorrupt(
        f"session {shown(session_id)} cannot be used: its stored record is corrupt or was "
        "written for another model (details logged); delete it and create a new session",
        field="session_id",
    )


@dataclass(frozen=True)
class Session:
    """Immutable: a change is a new Session saved in place of the old one."""

    id: str
    model: str
    version: int
    steps: int
    states: tuple[np.ndarray, ...]  # per sample: shapes are the model's state shapes
    next_token: int | None  # fed to the next generate step (None: nothing to feed back yet)
    created_at: float
    memory: np.ndarray | None = None  # attention models: the encoded source (time, units)
    expires_at: float = 0.0  # set by the store: last access + idle TTL
    revision: int = 0  # incremented on every save


class SessionStore(ABC):
    """Keeps sessions by id with an idle TTL and a cap on their number.

    Changes to one session go through `lock(id)`: load, compute, save, so that
    concurrent requests on one session are applied one at a time.
    """

    @abstractmethod
    async def create(self, session: Session) -> Session:
        """Store a new session; raises CapacityExceeded at the cap."""

    @abstractmethod
    async def get(self, session_id: str) -> Session | None:
        """The live session (its idle TTL refreshed), or None if unknown or expired."""

    @abstractmethod
    async def save(self, session: Session) -> Session:
        """Replace a live session (revision + 1, TTL refreshed)."""

    @abstractmethod
    async def delete(self, session_id: str) -> bool:
        """True if a live session was deleted."""

    @abstractmethod
    def lock(self, session_id: str) -> AbstractAsyncContextManager[None]:
        """Exclusive access to one session for a load-compute-save sequence."""

    @abstractmethod
    async def count(self) -> int: ...

    async def health(self) -> str | None:
        """None when sessions can be served, else what is wrong."""
        return None

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections / start background work."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
