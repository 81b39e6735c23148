"""Where the Redis stores keep a session: 64 partitions, no key that every request writes.

A session belongs to partition `crc32(id) mod 64`, whatever its id (ids from before the
partitions, and ids named by clients, have one too). Each partition has its own expiry index
(a sorted set of ids by expiry) and its share of the session cap, so each request
touches only its own session's partition. On Redis Cluster every key of a session carries
its partition as a hash tag (`{p17}`): the session's keys and its partition's index share
one hash slot, so every script runs on one node. On a single Redis the session's own
keys keep their names from before the partitions (`s2s:s:<id>`, ...), so sessions created
before an upgrade are still found.

The cap (SERVICE_MAX_SESSIONS) is split among the partitions: partition b holds at most
`max // 64`, plus one for the first `max % 64` partitions, so the shares add up to the cap
and the store never holds more. A new session goes to a partition with room: its id is
drawn again, for another partition, up to `PLACEMENT_TRIES` times, so creation is refused
only when every partition tried is full. Sessions named by clients (V2 sequence ids) cannot
move: they are refused when their partition is full, and have room for one in every partition
even when the cap is below 64 (the store then holds at most 64).
"""

from __future__ import annotations

import hashlib
import random
import zlib
from collections.abc import Iterator

from service.sessions.store import new_session_id

PARTITIONS = 64
PLACEMENT_TRIES = 8


def partition_of(session_id: str) -> int:
    return zlib.crc32(session_id.encode()) % PARTITIONS


def partition_cap(partition: int, max_sessions: int) -> int:
    return max_sessions // PARTITIONS + (1 if partition < max_sessions % PARTITIONS else 0)


def id_in_partition(partition: int) -> str:
    """A fresh session id in `partition` (64 draws on average, ~0.1 ms)."""
    while partition_of(session_id := new_session_id()) != partition:
        pass
    return session_id


def placements(session_id: str, max_sessions: int, named: bool) -> Iterator[tuple[str, int]]:
    """(id, its partition's cap) to try in order: the id as given first, then (unless
    `named`) fresh ids in other partitions that have a share of the cap."""
    first = partition_of(session_id)
    cap = partition_cap(first, max_sessions)
    if named:
        yield session_id, max(1, cap)
        return
    if cap > 0:
        yield session_id, cap
    others = [b for b in range(min(PARTITIONS, max_sessions)) if b != first]
    tries = PLACEMENT_TRIES - (1 if cap > 0 else 0)
    for partition in random.sample(others, min(tries, len(others))):
        yield id_in_partition(partition), partition_cap(partition, max_sessions)


class KeyLayout:
    """Key names under a prefix (`s2s:` by default); `tagged` for Redis Cluster."""

    def __init__(self, prefix: str, tagged: bool):
        self.prefix = prefix
        self.tagged = tagged

    def _session_prefix(self, session_id: str) -> str:
        return f"{self.prefix}{{p{partition_of(session_id)}}}:" if self.tagged else self.prefix

    def index(self, partition: int) -> str:
        return f"{self.prefix}{{p{partition}}}:index"

    def indexes(self) -> list[str]:
        return [self.index(b) for b in range(PARTITIONS)]

    def session(self, session_id: str) -> str:
        return f"{self._session_prefix(session_id)}s:{session_id}"

    def replays(self, session_id: str) -> list[str]:
        """The answers kept under Idempotency-Keys (hash) and their order (list)."""
        p = self._session_prefix(session_id)
        return [f"{p}r:{session_id}", f"{p}rk:{session_id}"]

    def lock(self, session_id: str) -> str:
        return f"{self._session_prefix(session_id)}lock:{session_id}"

    def owned(self, owner: str) -> str:
        """One API key's sessions (sorted set, scored by a known expiry), for its quota:
        in a slot of its own, named by a hash of the key's name."""
        digest = hashlib.sha256(owner.encode()).hexdigest()[:16]
        return f"{self.prefix}{{o{digest}}}:owned"
