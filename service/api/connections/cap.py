"""How many connections the server holds (SERVICE_MAX_CONNECTIONS), and which one gives way.

Two bands of connections. The first SERVICE_MAX_CONNECTIONS are served as usual. At
that cap a new connection takes the place of the one that has waited longest for a
request: idle between requests, or its headers not finished, so nothing of it is in
progress (nginx reuses idle keep-alive connections the same way). So idle and
slow-header connections can never lock new clients or the probes out. Only when every
connection has a request in progress does a new one go to the probe band
(SERVICE_PROBE_CONNECTIONS more, with the same rule inside it): it may ask a health
probe, anything else gets 503. Beyond both a connection gets 503 at once and is closed,
so the process never holds more client sockets than the two bands, which `fit` keeps
under the process's open-file limit.
"""

from __future__ import annotations

import logging
import resource
import time
from collections import Counter
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("service")

# file descriptors kept for everything but client connections: the listening socket,
# model files, Redis connections, logs, TensorFlow's and the reload poller's files
FD_HEADROOM = 256


class Member(Protocol):
    def evict(self) -> None: ...


class Band:
    def __init__(self, limit: int):
        self.limit = limit
        self.members: set[Member] = set()
        self.waiting: dict[Member, None] = {}  # members with nothing in progress, oldest first

    def admit(self, member: Member) -> bool:
        if len(self.members) >= self.limit:
            if not self.waiting:
                return False
            oldest = next(iter(self.waiting))
            self.leave(oldest)
            oldest.evict()
        self.members.add(member)
        return True

    def leave(self, member: Member) -> None:
        self.members.discard(member)
        self.waiting.pop(member, None)

    def waits(self, member: Member, waiting: bool) -> None:
        """`waiting`: the member has nothing in progress (it may give way); it goes to
        the back of the line."""
        self.waiting.pop(member, None)
        if waiting and member in self.members:
            self.waiting[member] = None


class Tally:
    """What was refused or cut, logged at most once per `interval` (an attack makes
    thousands of these a second; the log must not become the next resource it exhausts)."""

    def __init__(self, interval: float = 10.0):
        self.interval = interval
        self.counts: Counter[str] = Counter()
        self.logged_at = -interval
        self.counted: Callable[[str], None] | None = None  # e.g. a metric, by reason

    def add(self, what: str) -> None:
        self.counts[what] += 1
        if self.counted is not None:
            self.counted(what)
        now = time.monotonic()
        if now - self.logged_at >= self.interval:
            counted = ", ".join(f"{what} {n}" for what, n in sorted(self.counts.items()))
            log.warning("connections refused or cut (since the last such line): %s", counted)
            self.counts.clear()
            self.logged_at = now


class ConnectionCap:
    def __init__(self, limit: int, probe_limit: int):
        self.main = Band(limit)
        self.probes = Band(probe_limit)
        self.tally = Tally()

    def admit(self, member: Member) -> Band | None:
        """The band the new connection is in, or None: refuse it. May evict an older one."""
        for band in (self.main, self.probes):
            evicting = len(band.members) >= band.limit
            if band.admit(member):
                if evicting:
                    self.tally.add("idle connections closed at the cap")
                return band
        self.tally.add("connections refused at the cap")
        return None


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (any process may); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. above the kernel's nr_open
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft


def fit(max_connections: int, probe_connections: int, open_files: int) -> int:
    """SERVICE_MAX_CONNECTIONS, lowered if both bands and the headroom would not fit
    under the open-file limit (a warning says so)."""
    room = open_files - FD_HEADROOM - probe_connections
    if room < 1:
        raise ValueError(
            f"the open-file limit ({open_files}) leaves no room for client connections: "
            f"{FD_HEADROOM} are kept for the process and {probe_connections} for probes "
            "(SERVICE_PROBE_CONNECTIONS); raise the limit (ulimit -n)"
        )
    if max_connections > room:
        log.warning(
            "SERVICE_MAX_CONNECTIONS %d lowered to %d: the open-file limit is %d (%d kept for "
            "the process, %d for probes)",
            max_connections,
            room,
            open_files,
            FD_HEADROOM,
            probe_connections,
        )
        return room
    return max_connections
