"""Transformer sessions' key/value caches, kept by this process between their requests.

A session's record (in memory or in Redis) holds its prefix states and memory, never a
cache. A Transformer decoder with a key/value cache would rebuild its caches from the
prefix, one pass, in every request of the session; instead, the states each request
ended with, extended by the caches (`Compute.kv_states`), stay here under the session's
id and the revision its save gave it, and the next request on this process continues
from them. Bounded in bytes, the least recently used out first; a process that never
saw the session (another replica served its last request), or whose entry was pushed
out, rebuilds the caches in one pass, as before. An entry is used only if its prefix
states equal the session's exactly: the caches are a function of them (and the model
version, which a session never changes), so a kept entry cannot answer for another
session's state, whatever happened to the id in between (deleted and created again).

Everything here runs on the event loop: a dictionary look-up and a comparison of the
prefix (the tokens so far, the memory: microseconds).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter

from service.dataplane.session_info import carried
from service.sessions.store import StoredSession

States = tuple[np.ndarray, ...]


@dataclass(frozen=True)
class _Kept:
    revision: int
    prefix: States  # the session's carried states the caches were built from
    extended: States
    size: int  # bytes


class KvSessions:
    def __init__(self, max_bytes: int, counter: Counter | None = None):
        self.max_bytes = max_bytes
        self._kept: OrderedDict[str, _Kept] = OrderedDict()  # by session id, oldest first
        self.size = 0
        self._counter = counter

    def carried(self, session: StoredSession) -> States:
        """What a request on `session` starts from: its kept extended states if this
        process has them for its revision, else its prefix states."""
        plain = carried(session)
        kept = self._kept.get(session.id)
        if (
            kept is None
            or kept.revision != session.revision
            or not all(np.array_equal(a, b) for a, b in zip(kept.prefix, plain, strict=True))
        ):
            self._count("miss")
            return plain
        self._count("hit")
        self._kept.move_to_end(session.id)
        return kept.extended

    def keep(self, saved: StoredSession, states: Sequence[np.ndarray]) -> None:
        """A request's final `states`, for the session as saved (its new revision); only
        extended ones (prefix states are in the record already)."""
        self.forget(saved.id)
        prefix = carried(saved)
        if len(states) <= len(prefix):
            return
        extended = tuple(np.array(s, copy=True) for s in states)  # not views of a batch
        size = sum(s.nbytes for s in extended)
        if size > self.max_bytes:
            return
        while self.size + size > self.max_bytes:
            _, old = self._kept.popitem(last=False)
            self.size -= old.size
        self._kept[saved.id] = _Kept(saved.revision, prefix, extended, size)
        self.size += size

    def forget(self, session_id: str) -> None:
        kept = self._kept.pop(session_id, None)
        if kept is not None:
            self.size -= kept.size

    def __len__(self) -> int:
        return len(self._kept)

    def _count(self, result: str) -> None:
        if self._counter is not None:
            self._counter.labels(result).inc()
