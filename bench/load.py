"""Shared pieces of the long-running benchmarks (soak, faults): a lean keep-alive HTTP/1.1
client (one connection per worker and server, so "64 connections" means 64 sockets in
flight), a recorder of every request (start, end, operation, server, status), figures
(requests/s, counts by status, p50/p99) and a redis-server of our own on a free port.

Why not httpx.AsyncClient: with 64 concurrent tasks on one client it managed ~120
requests/s here against ~2,600/s for this client on the same server (its pool lock
dominates), so it, not the server, would have been the thing measured.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bench.wrk import free_port

# a transport failure instead of an HTTP status
CONN = "conn"  # refused, reset, closed before a full answer
TIMEOUT = "timeout"
Status = int | str


class TransportError(Exception):
    """No complete HTTP answer: `kind` is CONN or TIMEOUT."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Conn:
    """One keep-alive HTTP/1.1 connection to one server, reopened after any failure or
    after `idle` seconds unused (before uvicorn's 5 s keep-alive timeout can close it
    under a request we are writing, which would make a non-idempotent request ambiguous)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0, idle: float = 3.0):
        self.host, self.port, self.timeout, self.idle = host, port, timeout, idle
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = 0.0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            return await asyncio.wait_for(
                self._request(method, path, body, headers or {}), self.timeout
            )
        except TimeoutError:
            self.close()
            raise TransportError(TIMEOUT, f"no answer within {self.timeout} s") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            self.close()
            raise TransportError(CONN, f"{type(e).__name__}: {e}") from None

    async def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if self._writer is not None and time.monotonic() - self._used > self.idle:
            self.close()
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        answer: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            answer[name.strip().lower()] = value.strip()
        if "content-length" in answer:
            data = await reader.readexactly(int(answer["content-length"]))
        elif answer.get("transfer-encoding", "").lower() == "chunked":
            data = await _read_chunked(reader)
        elif status in (204, 304) or 100 <= status < 200:
            data = b""
        else:  # body delimited by the end of the connection
            data = await reader.read()
            answer["connection"] = "close"
        if answer.get("connection", "").lower() == "close":
            self.close()
        self._used = time.monotonic()
        return status, answer, data


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


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


@dataclass
class Reply:
    status: Status
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return isinstance(self.status, int) and 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)


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


# ---- figures -------------------------------------------------------------------------


def ok_status(status: Status) -> bool:
    return isinstance(status, int) and 200 <= status < 300


def counts(events: Iterable[Event]) -> Counter[str]:
    return Counter(str(e.status) for e in events)


def format_counts(c: Counter[str]) -> str:
    if not c:
        return "-"
    return " ".join(f"{k}:{v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0])))


def percentiles_ms(events: Sequence[Event], qs: Sequence[float] = (50, 99)) -> list[float]:
    if not events:
        return [float("nan")] * len(qs)
    lat = np.fromiter((e.end - e.start for e in events), float, len(events)) * 1000
    return [float(x) for x in np.percentile(lat, qs)]


# ---- redis-server ------------------------------------------------------------------------


class RedisProcess:
    """A redis-server on a free port in a temporary directory. With `persistent` every
    write is in the append-only file and fsynced before Redis answers (appendfsync
    always), so a clean shutdown and a start on the same directory keep every session."""

    def __init__(self, persistent: bool = True):
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found: apt-get install redis-server")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                *(persistence if self.persistent else ["--appendonly", "no"]),
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: see {self.dir / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"redis-server on port {self.port} did not answer PING")

    def shutdown(self) -> None:
        """SIGTERM: Redis's clean shutdown (flushes the append-only file), then exit."""
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
            self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the mixed operations both benchmarks use --------------------------------------------

PREDICT_PATH = "/v1/models/reverse/predict"


def sources(n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(1, 50) for _ in range(6)] for _ in range(n)]


async def expected_answers(worker: Worker, pool: list[list[int]]) -> list[list[int]]:
    """The server's own answers, one request at a time, before any load: under load
    (batched with others) every answer must be the same tokens."""
    answers = []
    for source in pool:
        reply, _ = await worker.call("baseline", "POST", PREDICT_PATH, {"inputs": [source]})
        if not reply.ok:
            raise RuntimeError(f"baseline predict answered {reply.status}: {reply.body[:300]!r}")
        answers.append(list(reply.json()["outputs"][0]))
    return answers


@dataclass
class Checked:
    """Answers that came back 2xx but differ from what they must be."""

    wrong: int = 0
    examples: list[str] = field(default_factory=list)

    def bad(self, what: str) -> None:
        self.wrong += 1
        if len(self.examples) < 5:
            self.examples.append(what)


async def predict(
    worker: Worker, pool: list[list[int]], answers: list[list[int]], checked: Checked
) -> Reply:
    """One of three predict calls: a checked single source on /v1/models/reverse/predict,
    a batch of 1..4 on /predict (the default model), or the memory model."""
    rng = worker.rng
    r = rng.random()
    if r < 0.6:
        k = rng.randrange(len(pool))
        reply, _ = await worker.call("predict", "POST", PREDICT_PATH, {"inputs": [pool[k]]})
        if reply.ok and reply.json()["outputs"] != [answers[k]]:
            checked.bad(f"predict {pool[k]}: {reply.body[:200]!r}, expected {answers[k]}")
        return reply
    if r < 0.8:
        batch = [pool[rng.randrange(len(pool))] for _ in range(rng.randint(1, 4))]
        reply, _ = await worker.call("predict", "POST", "/predict", {"inputs": batch})
        return reply
    values = [[rng.randint(0, 4) for _ in range(rng.randint(1, 5))]]
    reply, _ = await worker.call(
        "predict", "POST", "/predict", {"model": "memory", "inputs": values}
    )
    return reply
