"""Session steps over WebSockets under load: N sessions, one WebSocket each, every
connection stepping its session one message after another (send, wait for the answer,
check it, send the next), for a warm-up and then the measured seconds.

`measure(url)` first checks, once, that 64 sessions stepped over WebSockets give exactly
the outputs (and, within 1e-5 relative and absolute, the states) of the same inputs
stepped over HTTP on fresh sessions; then it runs the load in a process of its own (as
wrk is) and returns a `LoadResult` row named "session step (WebSocket)" (`report.py`'s
HTTP table prints it next to wrk's rows), with the client's own CPU.

`python -m bench sockets [--seconds 6]` starts the echo server and the service
(bench/__main__.py's SERVER_ENV), loads echo with wrk at 64 connections, the service's
HTTP session steps with wrk at 64 connections, then this load, and prints the rows and
the ratio to echo (issue 21's target: >= 1.5x echo's HTTP requests per second).

The client (`python -m bench.socket_steps URL`): one process, one thread, uvloop, the
`websockets` library's sans-I/O protocol driven by an `asyncio.Protocol` (no task,
future or queue per message: the answer's `data_received` sends the next message),
permessage-deflate off, every message's bytes made before the load. An answer is checked
without parsing it: it must begin `{"id":<the id sent>,"session_id":"` (an error answer
has `"status"` there) and hold `"outputs":[`. Steps per second count answers received in
the measured window; latency is from a message's send to its answer. `failed` counts bad
answers (warm-up included) and connections lost.

Client CPU (resource.getrusage of the client process over the measured window; for wrk,
RUSAGE_CHILDREN around its measured run), on this 2-core machine shared with the server,
2026-12-06, load average 2-4 from other work: the sans-I/O driver used 0.031-0.038
CPU-seconds per 1,000 steps (three runs of `python -m bench sockets`), the `websockets`
asyncio client (`--driver client`: a task per connection, send/recv coroutines, futures)
0.043-0.046 (steps/s the same within the runs' noise); wrk against echo at 64
connections 0.022-0.029 per 1,000 requests. So this client costs ~1.1-1.4x what wrk does
per message (~0.2 of a core at 7,000 steps/s), taken from the cores the server shares.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast
from urllib.parse import urlsplit

from bench.wrk import LoadResult

NAME = "session step (WebSocket)"
CYCLE = 1000  # message ids 0..999, again and again; input id % 5 (the memory model's tokens)
MESSAGES = [b'{"id":%d,"inputs":[%d]}' % (k, k % 5) for k in range(CYCLE)]
PREFIXES = [b'{"id":%d,"session_id":"' % k for k in range(CYCLE)]
OUTPUTS = b'"outputs":['
OPEN_TIMEOUT = 60  # seconds to open every connection
ANSWER_TIMEOUT = 10  # seconds for the answers in flight when the load stops (wrk's --timeout)


@dataclass
class SocketResult(LoadResult):
    """A LoadResult row, with the client's CPU and the check before the load."""

    client_cpu_s_per_1000: float = 0.0  # client CPU-seconds per 1,000 steps
    mismatches: int = 0  # sessions whose WebSocket outputs/states differ from HTTP's

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.connections} connections, {self.rps:,.0f} steps/s, "
            f"p50 {self.p50_ms:.2f} ms, p90 {self.p90_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, "
            f"{self.requests} steps, {self.failed} failed; client "
            f"{self.client_cpu_s_per_1000:.3f} CPU-s per 1,000 steps; "
            f"{self.mismatches} sessions differing from HTTP"
        )


def socket_url(url: str, session_id: str) -> str:
    parts = urlsplit(url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}/v1/sessions/{session_id}/ws"


# ---------------------------------------------------------------- the client process


class Run:
    """The load's clock and figures, shared by every connection."""

    def __init__(self) -> None:
        self.going = True  # connections send their next message while true
        self.measuring = False
        self.latencies: list[float] = []
        self.failed = 0
        self.lost = 0
        self.began = self.ended = 0.0
        self.cpu = 0.0

    def record(self, seconds: float, good: bool) -> None:
        if self.measuring:
            self.latencies.append(seconds)
        if not good:
            self.failed += 1

    def start(self) -> None:
        self.cpu = -cpu_seconds()
        self.began = time.perf_counter()
        self.measuring = True

    def stop(self) -> None:
        self.measuring = self.going = False
        self.ended = time.perf_counter()
        self.cpu += cpu_seconds()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Stepper(asyncio.Protocol):
    """One WebSocket on the websockets library's sans-I/O protocol: each answer is
    checked and the next message sent from `data_received`, one write per message."""

    def __init__(self, uri: str, run: Run) -> None:
        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.ws = ClientProtocol(parse_uri(uri))  # no extensions: no compression
        self.run = run
        self.n = 0
        self.sent = 0.0
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.idle: asyncio.Future[None] = loop.create_future()  # stopped sending
        self.closed: asyncio.Future[None] = loop.create_future()
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        self.ws.send_request(self.ws.connect())
        self.flush()

    def flush(self) -> None:
        for data in self.ws.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def send(self) -> None:
        self.sent = time.perf_counter()
        self.ws.send_text(MESSAGES[self.n % CYCLE])

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode

        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if type(event) is not Frame:  # the handshake's response
                if ws.handshake_exc is not None:
                    self.opened.set_exception(ws.handshake_exc)
                else:
                    self.opened.set_result(None)
                continue
            if event.opcode is not Opcode.TEXT:
                continue  # pings are answered by the protocol, a close ends it
            now = time.perf_counter()
            k = self.n % CYCLE
            answer = cast(bytes, event.data)  # bytes, as parsed
            self.run.record(now - self.sent, answer.startswith(PREFIXES[k]) and OUTPUTS in answer)
            self.n += 1
            if self.run.going:
                self.send()
            elif not self.idle.done():
                self.idle.set_result(None)
        self.flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            self.run.lost += 1
            self.run.failed += 1
        for future in (self.opened, self.idle, self.closed):
            if not future.done():
                future.set_result(None)

    async def close(self) -> None:
        self.closing = True
        self.ws.send_close(1000)
        self.flush()
        try:
            async with asyncio.timeout(5):
                await self.closed
        except TimeoutError:
            self.transport.abort()


async def protocol_load(url: str, ids: list[str], run: Run, timing: Callable[[], Any]) -> None:
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    steppers = []
    async with asyncio.timeout(OPEN_TIMEOUT):
        for session_id in ids:
            make = partial(Stepper, socket_url(url, session_id), run)
            _, stepper = await loop.create_connection(make, host, port)
            await stepper.opened
            steppers.append(stepper)
    for stepper in steppers:
        stepper.send()
        stepper.flush()
    await timing()
    # the answers in flight at the end (not counted), or else failed
    await asyncio.wait([s.idle for s in steppers], timeout=ANSWER_TIMEOUT)
    for stepper in steppers:
        if not stepper.idle.done():
            run.failed += 1
            stepper.closing = True
            stepper.transport.abort()
    await asyncio.gather(*(s.close() for s in steppers if not s.closed.done()))


async def client_load(url: str, ids: list[str], run: Run, timing: Callable[[], Any]) -> None:
    """The same load through the websockets library's asyncio client (for comparison)."""
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed

    async def drive(ws: ClientConnection) -> None:
        n = 0
        try:
            while run.going:
                k = n % CYCLE
                sent = time.perf_counter()
                await ws.send(MESSAGES[k], text=True)
                answer = await ws.recv(decode=False)
                good = isinstance(answer, bytes) and answer.startswith(PREFIXES[k])
                run.record(time.perf_counter() - sent, good and OUTPUTS in answer)
                n += 1
        except ConnectionClosed:
            run.lost += 1
            run.failed += 1

    async with asyncio.timeout(OPEN_TIMEOUT):
        sockets = [
            await connect(
                socket_url(url, i), compression=None, ping_interval=None, proxy=None, max_queue=4
            )
            for i in ids
        ]
    tasks = [asyncio.create_task(drive(ws)) for ws in sockets]
    await timing()
    _, late = await asyncio.wait(tasks, timeout=ANSWER_TIMEOUT)
    run.failed += len(late)
    for task in late:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in sockets))


DRIVERS = {"protocol": protocol_load, "client": client_load}


async def load(
    url: str, ids: list[str], seconds: float, warmup: float, driver: str
) -> dict[str, Any]:
    run = Run()

    async def timing() -> None:
        await asyncio.sleep(warmup)
        run.start()
        await asyncio.sleep(seconds)
        run.stop()

    await DRIVERS[driver](url, ids, run, timing)
    window = run.ended - run.began
    ms = sorted(x * 1000 for x in run.latencies)
    steps = len(ms)
    return {
        "steps": steps,
        "seconds": window,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "failed": run.failed,
        "lost": run.lost,
        "cpu_s": run.cpu,
        "cpu_s_per_1000": run.cpu / steps * 1000 if steps else 0.0,
    }


def percentile(ordered: list[float], q: float) -> float:
    """Nearest rank (as wrk's histogram reports one) of sorted values, 0 for none."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[min(int(rank), len(ordered)) - 1]


def client_main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.socket_steps")
    parser.add_argument("url")
    parser.add_argument("--model", default="memory")
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--driver", choices=sorted(DRIVERS), default="protocol")
    args = parser.parse_args()
    import httpx
    import uvloop

    with httpx.Client(base_url=args.url, timeout=60) as http:
        ids = []
        for _ in range(args.sessions):
            created = http.post("/v1/sessions", json={"model": args.model})
            created.raise_for_status()
            ids.append(created.json()["session_id"])
        try:
            result = uvloop.run(load(args.url, ids, args.seconds, args.warmup, args.driver))
        finally:
            for i in ids:
                http.delete(f"/v1/sessions/{i}")
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- the caller's side


def measure(
    url: str,
    model: str = "memory",
    sessions: int = 64,
    seconds: float = 6,
    warmup: float = 2,
    *,
    check: bool = True,
    driver: str = "protocol",
) -> SocketResult:
    """`check` (once, before the load): `verify` on 64 sessions; then the load, run by
    `python -m bench.socket_steps` in a process of its own."""
    mismatches = verify(url, model) if check else 0
    argv = [sys.executable, "-m", "bench.socket_steps", url, "--model", model]
    argv += ["--sessions", str(sessions), "--seconds", str(seconds), "--warmup", str(warmup)]
    out = subprocess.run(
        [*argv, "--driver", driver],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + warmup + 120,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return SocketResult(
        name=NAME,
        connections=sessions,
        rps=data["steps"] / data["seconds"],
        p50_ms=data["p50_ms"],
        p90_ms=data["p90_ms"],
        p99_ms=data["p99_ms"],
        requests=data["steps"],
        failed=data["failed"],
        client_cpu_s_per_1000=data["cpu_s_per_1000"],
        mismatches=mismatches,
    )


def verify(url: str, model: str = "memory", sessions: int = 64, steps: int = 12) -> int:
    """Sessions stepped concurrently over WebSockets against the same inputs (1 to 3
    values a message, random) stepped over HTTP on fresh sessions: the number of
    sessions whose outputs, step counts or states (1e-5) differ. An error answer raises."""
    return asyncio.run(_verify(url, model, sessions, steps))


async def _verify(url: str, model: str, sessions: int, steps: int) -> int:
    import random

    import httpx
    import numpy as np
    from websockets.asyncio.client import connect

    rng = random.Random(21)
    chunks = [
        [[rng.randrange(5) for _ in range(rng.randint(1, 3))] for _ in range(steps)]
        for _ in range(sessions)
    ]
    limits = httpx.Limits(max_connections=sessions)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def create() -> str:
            created = await http.post("/v1/sessions", json={"model": model})
            created.raise_for_status()
            return str(created.json()["session_id"])

        over_ws = [await create() for _ in range(sessions)]
        over_http = [await create() for _ in range(sessions)]

        async def socket_steps(k: int) -> list[Any]:
            answers = []
            uri = socket_url(url, over_ws[k])
            async with connect(uri, compression=None, proxy=None) as ws:
                for n, chunk in enumerate(chunks[k]):
                    await ws.send(json.dumps({"id": n, "inputs": chunk}))
                    answer = json.loads(await ws.recv())
                    if answer.get("id") != n or "error" in answer:
                        raise RuntimeError(f"WebSocket step {n}: {answer}")
                    answers.append([answer["outputs"], answer["steps"]])
            return answers

        async def http_steps(k: int) -> list[Any]:
            answers = []
            for chunk in chunks[k]:
                r = await http.post(f"/v1/sessions/{over_http[k]}/step", json={"inputs": chunk})
                r.raise_for_status()
                answers.append([r.json()["outputs"], r.json()["steps"]])
            return answers

        async def state(session_id: str) -> list[Any]:
            r = await http.get(f"/v1/sessions/{session_id}", params={"include_state": "true"})
            r.raise_for_status()
            await http.delete(f"/v1/sessions/{session_id}")
            return list(r.json()["state"])

        ws_answers = await asyncio.gather(*(socket_steps(k) for k in range(sessions)))
        http_answers = await asyncio.gather(*(http_steps(k) for k in range(sessions)))
        ws_states = await asyncio.gather(*(state(i) for i in over_ws))
        http_states = await asyncio.gather(*(state(i) for i in over_http))
    bad = 0
    for k in range(sessions):
        same = ws_answers[k] == http_answers[k] and all(
            np.allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), 1e-5, 1e-5)
            for a, b in zip(ws_states[k], http_states[k], strict=True)
        )
        bad += not same
    return bad


# ---------------------------------------------------------------- python -m bench sockets


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=int, default=6, help="per load run")
    parser.add_argument(
        "--driver", choices=sorted(DRIVERS), default="protocol", help="the WebSocket client"
    )


def run(args: argparse.Namespace, env: dict[str, str]) -> int:
    """Echo over HTTP (wrk), session steps over HTTP (wrk) and over WebSockets, side by
    side, on servers started with `env` (bench/__main__.py's SERVER_ENV)."""
    import httpx

    from bench.wrk import post_script, sessions_script, wrk
    from tests.harness import running

    source = [20, 36, 40, 10, 34, 28]
    load_before = os.getloadavg()
    with running(env, module=["bench.echo"], timeout=180) as (url, _):
        body = json.dumps({"inputs": [source]})
        script = post_script(
            "/echo", body, json.dumps({"outputs": [source]}, separators=(",", ":"))
        )
        wrk(f"{url}/echo", script, 64, 2, "echo", warm_up=0)
        before = children_cpu()
        echo = wrk(f"{url}/echo", script, 64, args.seconds, "echo", warm_up=0)
        wrk_cpu = (children_cpu() - before) / echo.requests * 1000
    print(echo, flush=True)
    with running(env, timeout=180) as (url, _):
        with httpx.Client(base_url=url) as http:
            ids = [
                http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]
                for _ in range(64)
            ]
        steps = wrk(url, sessions_script(ids), 64, args.seconds, "session step")
        print(steps, flush=True)
        socket = measure(url, seconds=args.seconds, driver=args.driver)
        print(socket, flush=True)
    load_after = os.getloadavg()
    print(
        f"\nWebSocket steps / echo HTTP requests, 64 connections: {socket.rps / echo.rps:.2f}x "
        f"(target >= 1.5x); HTTP steps / echo: {steps.rps / echo.rps:.2f}x (target >= 0.7x)\n"
        f"client CPU-s per 1,000: WebSocket client ({args.driver}) "
        f"{socket.client_cpu_s_per_1000:.3f}, wrk (echo) {wrk_cpu:.3f}\n"
        f"load average {load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end "
        f"({os.cpu_count()} cores)",
        flush=True,
    )
    return 0 if socket.failed == 0 and socket.mismatches == 0 and echo.failed == 0 else 1


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    client_main()
