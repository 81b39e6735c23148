"""Simulated clients: a connection per worker and server (so "64 connections" means 64
sockets in flight), and a recorder of every request (start, end, operation, server,
status)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

from bench.load.client import CONN, Conn, Reply, Status, TransportError


class Event(NamedTuple):
    start: float  # time.monotonic()
    end: float
    op: str  # "predict", "create", "step", "generate", "get", "delete", ...
    server: int  # index of the server it went to
    status: Status
    detail: str = ""  # the start of the body of a non-2xx answer, or the transport error


class Recorder:
    """Every request, in the order answers came back; `take()` hands over what came
    since the last call (the soak's intervals), `all` keeps everything if asked to."""

    def __init__(self, keep_all: bool = False):
        self._events: list[Event] = []
        self.keep_all = keep_all
        self.all: list[Event] = []

    def add(self, event: Event) -> None:
        self._events.append(event)
        if self.keep_all:
            self.all.append(event)

    def take(self) -> list[Event]:
        events, self._events = self._events, []
        return events


class Servers:
    """The servers a worker talks to, one connection each (there is no load balancer:
    the worker chooses). A server answering with a transport failure is skipped by
    every worker for `down_for` seconds."""

    def __init__(self, urls: Sequence[str], recorder: Recorder, timeout: float = 30.0):
        self.urls = list(urls)
        self.recorder = recorder
        self.timeout = timeout
        self.down_until = [0.0] * len(urls)
        self.down_for = 1.0

    def pick(self, rng: random.Random, avoid: int | None = None) -> int:
        now = time.monotonic()
        up = [i for i in range(len(self.urls)) if self.down_until[i] <= now and i != avoid]
        if not up:
            up = [i for i in range(len(self.urls)) if i != avoid] or [0]
        return rng.choice(up)

    def connections(self) -> list[Conn]:
        conns = []
        for url in self.urls:
            host, port = url.removeprefix("http://").rsplit(":", 1)
            conns.append(Conn(host, int(port), self.timeout))
        return conns


class Worker:
    """One simulated client: a connection per server, its own random stream."""

    def __init__(self, servers: Servers, seed: int):
        self.servers = servers
        self.conns = servers.connections()
        self.rng = random.Random(seed)

    def close(self) -> None:
        for c in self.conns:
            c.close()

    async def call(
        self,
        op: str,
        method: str,
        path: str,
        body: Any = None,
        server: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Reply, int]:
        """One request, recorded; returns the reply and the server it went to."""
        i = self.servers.pick(self.rng) if server is None else server
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        start = time.monotonic()
        try:
            status, answer, payload = await self.conns[i].request(method, path, data, headers)
            reply = Reply(status, answer, payload)
            detail = "" if reply.ok else payload[:300].decode(errors="replace")
        except TransportError as e:
            reply, detail = Reply(e.kind), str(e)
            if e.kind == CONN:
                self.servers.down_until[i] = time.monotonic() + self.servers.down_for
        self.servers.recorder.add(Event(start, time.monotonic(), op, i, reply.status, detail))
        return reply, i
