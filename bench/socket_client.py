"""The WebSocket load of bench/socket_steps.py, in a process of its own (`python -m
bench.socket_client URL`, as wrk is one): one thread, uvloop, the `websockets`
library's sans-I/O protocol driven by an `asyncio.Protocol` (no task, future or queue
per message: the answer's `data_received` sends the next message),
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
import resource
import time
from collections.abc import Callable
from functools import partial
from typing import Any, cast
from urllib.parse import urlsplit

CYCLE = 1000  # message ids 0..999, again and again; input id % 5 (the memory model's tokens)
MESSAGES = [b'{"id":%d,"inputs":[%d]}' % (k, k % 5) for k in range(CYCLE)]
PREFIXES = [b'{"id":%d,"session_id":"' % k for k in range(CYCLE)]
OUTPUTS = b'"outputs":['
OPEN_TIMEOUT = 60  # seconds to open every connection
ANSWER_TIMEOUT = 10  # seconds for the answers in flight when the load stops (wrk's --timeout)


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
    parser = argparse.ArgumentParser(prog="python -m bench.socket_client")
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


if __name__ == "__main__":
    client_main()
