"""A session: one client's recurrent state between requests, and where it is kept."""

from __future__ import annotations

import hashlib
import logging
import secrets
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from service.errors import CapacityExceeded, SessionCorrupt, shown

log = logging.getLogger("service")


def new_session_id() -> str:
    """192 random bits, URL-safe; never starting with "-", which a command line (ours
    included) would read as an option (ids from before this rule still work: pass them
    after `--`)."""
    while (session_id := secrets.token_urlsafe(24)).startswith("-"):
        pass
    return session_id


def log_id(session_id: str) -> str:
    """What logs show of a session id: a session id is a bearer secret, so only a short
    hash of it (the same id always gives the same hash, to follow a session through)."""
    return "~" + hashlib.sha256(session_id.encode()).hexdigest()[:12]


def capacity_exceeded(max_sessions: int, retry_seconds: int) -> CapacityExceeded:
    """What both stores answer at the cap (live sessions are never evicted)."""
    return CapacityExceeded(
        f"session capacity reached ({max_sessions} live sessions); delete unused sessions "
        f"or retry after {retry_seconds} s when idle ones expire",
        retry_after=retry_seconds,
    )


def owner_quota_exceeded(max_per_owner: int, retry_seconds: int) -> CapacityExceeded:
    return CapacityExceeded(
        f"this API key already has {max_per_owner} live sessions "
        f"(SERVICE_MAX_SESSIONS_PER_KEY); delete unused sessions or retry after "
        f"{retry_seconds} s when idle ones expire",
        retry_after=retry_seconds,
    )


def corrupt_session(session_id: str, problem: str) -> SessionCorrupt:
    """What a stored record that cannot be used answers (410), logged with the detail.
    The record is left as it is for inspection; DELETE removes it."""
    log.error("session %s: stored record cannot be used: %s", log_id(session_id), problem)
    return SessionCorrupt(
        f"session {shown(session_id)} cannot be used: its stored record is corrupt or was "
        "written for another model (details logged); delete it and create a new session",
        field="session_id",
    )


@dataclass(frozen=True)
class StoredSession:
    """Immutable: a change is a new StoredSession saved in place of the old one."""

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
    owner: str | None = None  # the API key's name that created it (None: keys off)

    def evolve(self, **changes: Any) -> StoredSession:
        """`dataclasses.replace(self, **changes)` without its per-call look at the fields
        (a session changes several times per step); an unknown name is a TypeError."""
        unknown = changes.keys() - _SESSION_FIELDS
        if unknown:
            raise TypeError(f"StoredSession has no field {sorted(unknown)}")
        new = object.__new__(StoredSession)
        new.__dict__.update(self.__dict__, **changes)
        return new


_SESSION_FIELDS = frozenset(f.name for f in fields(StoredSession))
FINGERPRINT_BYTES = 32
_KEPT = (200).to_bytes(2, "little")


@dataclass(frozen=True)
class Replay:
    """A change's answer kept under its Idempotency-Key, to answer a retry with; or, when
    the answer did not fit the session's byte budget, a marker: the key and fingerprint
    only, so that a retry is still recognised (and refused) rather than applied again.

    Stored as the fingerprint, two bytes and the body; a marker is the fingerprint
    alone (32 bytes: shorter than any answer). The two bytes are 200 as a u16
    (little-endian): records from before they lost their meaning (every kept answer is
    a success) still read, and records written now still read on older servers.
    """

    fingerprint: bytes  # sha256 of what was asked (operation and body), 32 bytes
    body: bytes = b""
    kept: bool = True  # False: a marker; the change was applied, its answer not kept

    @property
    def size(self) -> int:
        """What it counts against the session's budget: the answer's body."""
        return len(self.body) if self.kept else 0

    def marker(self) -> Replay:
        return Replay(self.fingerprint, kept=False)

    def within(self, budget: int) -> Replay:
        """Itself, or its marker if its answer alone is over the budget."""
        return self if self.size <= budget else self.marker()

    def encode(self) -> bytes:
        if not self.kept:
            return self.fingerprint
        return self.fingerprint + _KEPT + self.body

    @classmethod
    def decode(cls, data: bytes) -> Replay:
        n = FINGERPRINT_BYTES
        if len(data) == n:
            return cls(data, kept=False)
        return cls(data[:n], data[n + 2 :])


class SessionStore(ABC):
    """Keeps sessions by id with an idle TTL and a cap on their number.

    Changes to one session go through `lock(id)`: load, compute, save, so that
    concurrent requests on one session are applied one at a time.
    """

    @abstractmethod
    async def create(self, session: StoredSession, named: bool = False) -> StoredSession:
        """Store a new session and give it back as stored: unless `named` (the id was
        chosen by the client), the store may give it another fresh id (the Redis stores
        do, to place it where the cap has room). Raises CapacityExceeded at the cap, or
        at the per-owner cap for a session with an owner."""

    @abstractmethod
    async def get(self, session_id: str) -> StoredSession | None:
        """The live session (its idle TTL refreshed), or None if unknown or expired."""

    @abstractmethod
    async def save(
        self, session: StoredSession, remember: tuple[str, Replay] | None = None
    ) -> StoredSession:
        """Replace a live session (revision + 1, TTL refreshed). `remember`: an
        Idempotency-Key and its answer, stored in the same atomic write as the change
        (the last `keys_per_session` per session are kept, deleted with the session).
        The answers' bodies kept per session stay within `answer_bytes_per_session`:
        an answer over it alone is kept as its marker, and when newer answers need the
        room, the oldest answers become markers first."""

    @abstractmethod
    async def replay(self, session_id: str, key: str) -> Replay | None:
        """The answer remembered under `key` for this session (or its marker), if any."""

    @abstractmethod
    async def delete(self, session_id: str, owner: str | None = None) -> bool:
        """True if a live session was deleted (`owner`: the session's, if it has one)."""

    @abstractmethod
    def lock(self, session_id: str) -> AbstractAsyncContextManager[None]:
        """Exclusive access to one session for a load-compute-save sequence; waiting
        longer than the store's lock wait raises StoreUnavailable (503, Retry-After)."""

    @abstractmethod
    async def count(self) -> int: ...

    @abstractmethod
    def expiry(self) -> float:
        """The expires_at a save made now sets (the idle TTL from now)."""

    async def health(self) -> str | None:
        """None when sessions can be served, else what is wrong."""
        return None

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections / start background work."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
