"""Where a request's CPU goes: CPU microseconds per request, by stage, for `/predict`
and a session step, next to the echo app, with the settings off and on.

python -m bench budget [--requests 4000] [--out bench/results]

Measured in this process on the real app, served by the server's own uvicorn protocol
(service.server.uvicorn_config: httptools with the connection guards) over an in-memory
transport: every byte is parsed, routed and answered as on a socket, but no socket,
kernel or load generator shares the CPU, so what is left is the service's own cost.
32 connections send `/predict` (64 send session steps, one session each), each waiting
for its answer before sending the next, as wrk does.

Two runs per configuration:
1. unprofiled: process CPU time per request (every thread: the event loop, the batch
   worker, TensorFlow's), and the event loop thread's own CPU time; the difference is
   the compute thread (the graph call's share per row, and the batch worker around it);
2. under cProfile (event loop thread only): each function's own time is given to a
   stage by the module it belongs to (STAGES); the shares are scaled to the unprofiled
   event loop time (cProfile itself slows every call, not every stage equally: a share
   is an estimate, the totals are measured).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import pstats
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from tests.harness import ROOT

# stage name, and what the function's file path or name contains (first match wins)
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("access log", ("access_log.py", "/logging/", "pythonjsonlogger", "observability/logs.py")),
    ("metrics", ("prometheus_client", "observability/metrics.py")),
    ("request observer (id, context)", ("middleware/observe.py", "request_context.py")),
    ("API keys", ("middleware/auth.py",)),
    ("Host and Origin checks", ("middleware/origins.py",)),
    ("body limit", ("middleware/body_limit.py",)),
    ("body parsing and validation", ("validate_json", "validate_python", "/json/decoder")),
    ("serialisation", ("dump_json", "to_json", "serialize", "/json/encoder", "jsonable")),
    ("HTTP parsing (httptools, uvicorn)", ("httptools", "uvicorn/", "connections/")),
    ("routing and FastAPI", ("starlette/", "fastapi/")),
    ("handlers and dataplane", ("service/dataplane/", "service/api/", "service/wire/")),
    ("sessions store", ("service/sessions/",)),
    ("batcher hand-off and wake-up", ("service/inference/", "threading.py", "concurrent/")),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop", "<built-in method select", "run_")),
]
OTHER = "other"
CONNECTIONS = {"predict": 32, "step": 64}
SOURCE = [20, 36, 40, 10, 34, 28]
KEY = "budget-key-0123456789"


class Transport(asyncio.Transport):
    """One in-memory connection: what the server writes is kept until an answer is
    complete (headers and Content-Length bytes of body)."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.buffer = bytearray()
        self.answered: asyncio.Future[bytes] | None = None
        self.extra = {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", port)}
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.answered is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(self.buffer) >= end + 4 + length:
            answer = bytes(self.buffer[: end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.answered.set_result(answer)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def request(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1:8000"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    def __init__(self, config: Any, state: Any, port: int) -> None:
        self.transport = Transport(port)
        self.protocol = config.http_protocol_class(config=config, server_state=state, app_state={})
        self.protocol.connection_made(self.transport)

    async def send(self, raw: bytes) -> bytes:
        self.transport.answered = asyncio.get_running_loop().create_future()
        self.protocol.data_received(raw)
        answer = await self.transport.answered
        if not answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 201")):
            raise RuntimeError(f"unexpected answer: {answer[:300]!r}")
        return answer

    def close(self) -> None:
        self.protocol.connection_lost(None)


@dataclass
class Budget:
    name: str
    requests: int
    total_us: float  # process CPU per request, every thread
    loop_us: float  # the event loop thread's
    stages: dict[str, float] = field(default_factory=dict)  # event loop share, scaled

    @property
    def compute_us(self) -> float:
        return self.total_us - self.loop_us


def stage_of(filename: str, function: str) -> str:
    where = f"{filename}:{function}"
    for stage, marks in STAGES:
        if any(mark in where for mark in marks):
            return stage
    return OTHER


def shares(profile: cProfile.Profile) -> dict[str, float]:
    stats = pstats.Stats(profile)
    own: dict[str, float] = {}
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        stage = stage_of(filename, function)
        own[stage] = own.get(stage, 0.0) + row[2]  # tottime
    total = sum(own.values()) or 1.0
    return {stage: seconds / total for stage, seconds in own.items()}


@dataclass
class Workload:
    name: str
    connections: int
    # the request each connection sends, by connection index
    raw: Callable[[int], bytes]


async def drive(
    config: Any, state: Any, work: Workload, requests: int, profile: cProfile.Profile | None
) -> tuple[float, float]:
    """Process and event loop CPU seconds for `requests` requests."""
    conns = [Connection(config, state, 40000 + i) for i in range(work.connections)]
    per_conn = max(1, requests // work.connections)
    raws = [work.raw(i) for i in range(work.connections)]

    async def loop(i: int) -> None:
        for _ in range(per_conn):
            await conns[i].send(raws[i])

    cpu, thread = time.process_time(), time.thread_time()
    if profile is not None:
        profile.enable()
    await asyncio.gather(*(loop(i) for i in range(work.connections)))
    if profile is not None:
        profile.disable()
    cpu, thread = time.process_time() - cpu, time.thread_time() - thread
    for c in conns:
        c.close()
    return cpu / (per_conn * work.connections), thread / (per_conn * work.connections)


Works = Callable[[Callable[[], Connection]], Awaitable[list[Workload]]]


async def measure(app: Any, settings: Any, label: str, works: Works, requests: int) -> list[Budget]:
    """Start `app` (its lifespan), make its workloads, and measure each."""
    from uvicorn.server import ServerState

    from service.server import uvicorn_config

    config = uvicorn_config(app, settings, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    config.load()
    state = ServerState()
    out = []
    async with app.router.lifespan_context(app):
        for work in await works(lambda: Connection(config, state, 39999)):
            await drive(config, state, work, max(work.connections * 20, requests // 10), None)
            total, loop = await drive(config, state, work, requests, None)
            profile = cProfile.Profile()
            await drive(config, state, work, requests // 2, profile)
            budget = Budget(f"{work.name}, {label}", requests, total * 1e6, loop * 1e6)
            budget.stages = {s: share * budget.loop_us for s, share in shares(profile).items()}
            out.append(budget)
            print(
                f"{budget.name}: {budget.total_us:.0f} us CPU per request "
                f"({budget.loop_us:.0f} on the event loop)",
                flush=True,
            )
    return out


def body_of(answer: bytes) -> Any:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def service_works(headers: dict[str, str]) -> Works:
    async def works(connect: Callable[[], Connection]) -> list[Workload]:
        maker = connect()
        create = request("POST", "/v1/sessions", json.dumps({"model": "memory"}).encode(), headers)
        ids = [body_of(await maker.send(create))["session_id"] for _ in range(CONNECTIONS["step"])]
        await compiled(maker, headers)
        maker.close()
        predict = request(
            "POST", "/v1/models/reverse/predict", json.dumps({"inputs": [SOURCE]}).encode(), headers
        )
        step = json.dumps({"inputs": [1]}).encode()
        return [
            Workload("/predict", CONNECTIONS["predict"], lambda _: predict),
            Workload(
                "session step",
                CONNECTIONS["step"],
                lambda i: request("POST", f"/v1/sessions/{ids[i]}/step", step, headers),
            ),
        ]

    return works


async def compiled(connection: Connection, headers: dict[str, str]) -> None:
    """Every batch bucket the load can form compiled first (one request of k rows per
    bucket, then wait until none is pending): XLA compiles on background threads, whose
    CPU would otherwise count as the requests'."""
    for rows in (1, 2, 4, 8, 16, 32, 64):
        body = json.dumps({"inputs": [SOURCE] * rows}).encode()
        await connection.send(request("POST", "/v1/models/reverse/predict", body, headers))
    for model in ("reverse", "memory"):
        while True:
            raw = await connection.send(request("GET", f"/v1/models/{model}", b"", headers))
            buckets = body_of(raw).get("buckets")
            if not buckets or not any(buckets["pending"].values()):
                break
            await asyncio.sleep(0.5)


async def echo_works(connect: Callable[[], Connection]) -> list[Workload]:
    raw = request("POST", "/echo", json.dumps({"inputs": [SOURCE]}).encode(), {})
    return [Workload("echo", CONNECTIONS["predict"], lambda _: raw)]


def configured(keys_and_json: bool) -> tuple[Any, dict[str, str]]:
    """Settings off: no API keys, no access log. On: API keys and JSON access logs.
    Log lines are formatted by the server's own handler and written to /dev/null."""
    from service.config import Settings
    from service.observability import logs

    env: dict[str, Any] = {"warmup": "all", "log_level": "info", "access_log": keys_and_json}
    headers: dict[str, str] = {}
    if keys_and_json:
        env |= {"api_keys": KEY, "log_format": "json"}
        headers["Authorization"] = f"Bearer {KEY}"
    settings = Settings(model_store=ROOT / "model_store", **env)
    logs.configure(settings, relay_stderr=False)
    sink = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    logging.getLogger().handlers = [logs.handler(settings.log_format, sink)]
    return settings, headers


async def all_budgets(requests: int) -> list[Budget]:
    from bench import echo
    from service.app import create_app

    settings, _ = configured(False)
    out = await measure(echo.create_app(), settings, "echo app", echo_works, requests)
    for on in (False, True):
        settings, headers = configured(on)
        label = "keys + JSON access log" if on else "no keys, no access log"
        app = create_app(settings)
        out += await measure(app, settings, label, service_works(headers), requests)
    return out


def table(budgets: list[Budget]) -> str:
    stages = [name for name, _ in STAGES] + [OTHER]
    head = "| stage | " + " | ".join(b.name for b in budgets) + " |"
    rows = [head, "|---" * (len(budgets) + 1) + "|"]
    for stage in stages:
        cells = [f"{b.stages.get(stage, 0.0):.0f}" for b in budgets]
        rows.append(f"| {stage} | " + " | ".join(cells) + " |")
    rows.append(
        "| **event loop, measured** | " + " | ".join(f"**{b.loop_us:.0f}**" for b in budgets) + " |"
    )
    rows.append(
        "| compute thread (graph call's share per row, batch worker) | "
        + " | ".join(f"{b.compute_us:.0f}" for b in budgets)
        + " |"
    )
    rows.append(
        "| **total CPU, measured** | " + " | ".join(f"**{b.total_us:.0f}**" for b in budgets) + " |"
    )
    return "\n".join(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=4000, help="per measurement")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")


def measure_all(requests: int = 4000) -> list[Budget]:
    return uvloop.run(all_budgets(requests))


def write(out: Path, budgets: list[Budget], started: str) -> None:
    text = table(budgets)
    print(text, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "budget.md").write_text(
        f"# CPU per request by stage ({started}; `python -m bench budget`)\n\n"
        "Microseconds of CPU per request; stages are event-loop shares from cProfile scaled "
        "to the measured event-loop time (bench/budget.py says how).\n\n" + text + "\n"
    )


def run(args: argparse.Namespace) -> int:
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    write(args.out, measure_all(args.requests), started)
    return 0
