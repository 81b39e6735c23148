"""Queued jobs by owner (the API key that sent them), taken round-robin: one owner's
oldest job at a time in turn, so a flood from one key waits behind every other key's
next job instead of in front of it."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class Queued(Protocol):
    rows: int
    owner: str


J = TypeVar("J", bound=Queued)


class FairQueue(Generic[J]):
    def __init__(self) -> None:
        self._queues: dict[str, deque[J]] = {}  # in turn order: the next owner first
        self.rows = 0

    def __bool__(self) -> bool:
        return bool(self._queues)

    def __iter__(self) -> Iterator[J]:
        return (job for queue in self._queues.values() for job in queue)

    def append(self, job: J) -> None:
        self._queues.setdefault(job.owner, deque()).append(job)
        self.rows += job.rows

    def take(self, room: int, at_least_one: bool) -> list[J]:
        """Jobs for `room` more rows, in turn; with `at_least_one`, the next job even if
        it is larger than `room` (a job larger than a batch runs alone)."""
        jobs: list[J] = []
        rows = 0
        while self._queues:
            owner, queue = next(iter(self._queues.items()))
            job = queue[0]
            if rows + job.rows > room and (jobs or not at_least_one):
                break
            queue.popleft()
            del self._queues[owner]
            if queue:  # the owner's next job waits behind every other owner's
                self._queues[owner] = queue
            rows += job.rows
            jobs.append(job)
        self.rows -= rows
        return jobs

    def clear(self) -> None:
        self._queues.clear()
        self.rows = 0
