"""A Python load generator for decoding loops that wrk cannot run: N concurrent client
loops, each decoding one sequence after another over its own keep-alive connection.

`python -m bench.client_loops URL --loop predict|steps [--connections 32] [--seconds 6]`
prints one JSON line (its own process, like wrk; one thread, asyncio on uvloop, raw
HTTP/1.1 on asyncio streams, JSON with the standard library):

- `predict`: one `POST /v1/models/reverse/predict` per sequence (the engine: the loop
  runs in the server);
- `steps`: the loop in the client, over peer (b) (bench/peer_steps.py): `POST /encode`,
  then one `POST /step` per decoder step, the states sent back and forth, argmax here.

Sequences per second count sequences finished in the measured window (after the
warm-up); latency is per sequence (all of its calls). Every answer is checked: status
200 and the expected tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

SOURCE = [20, 36, 40, 10, 34, 28]
STEPS, START = 3, 0
PREDICT = "/v1/models/reverse/predict"


class Connection:
    """One keep-alive HTTP/1.1 connection; answers must carry a Content-Length."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.calls = 0

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    def close(self) -> None:
        self.writer.close()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        return await read_response(self.reader, self)

    async def post_json(self, path: str, data: object) -> object:
        status, body = await self.post(path, json.dumps(data).encode())
        if status != 200:
            raise AnswerError(f"{path}: {status} {body[:200]!r}")
        return json.loads(body)


class AnswerError(Exception):
    pass


async def read_response(reader: asyncio.StreamReader, conn: Connection) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    conn.calls += 1
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise AnswerError("an answer without Content-Length")
    return status, await reader.readexactly(length)


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


async def predict_loop(conn: Connection, source: list[int]) -> list[int]:
    answer = await conn.post_json(PREDICT, {"inputs": [source]})
    return list(answer["outputs"][0])  # type: ignore[index]


async def steps_loop(conn: Connection, source: list[int]) -> list[int]:
    """What a TF Serving or Triton user writes: encode, then one call per decoder step."""
    states = (await conn.post_json("/encode", {"sources": [source]}))["states"]  # type: ignore[index]
    token, tokens = START, []
    for _ in range(STEPS):
        answer = await conn.post_json("/step", {"tokens": [token], "states": states})
        token = argmax(answer["probabilities"][0])  # type: ignore[index]
        states = answer["states"]  # type: ignore[index]
        tokens.append(token)
    return tokens


LOOPS: dict[str, Callable[[Connection, list[int]], Awaitable[list[int]]]] = {
    "predict": predict_loop,
    "steps": steps_loop,
}


@dataclass
class LoopResult:
    name: str
    connections: int
    sequences_per_s: float
    calls_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    sequences: int
    failed: int

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.connections} client loops, {self.sequences_per_s:,.1f} "
            f"sequences/s ({self.calls_per_s:,.0f} calls/s), p50 {self.p50_ms:.2f} ms, "
            f"p99 {self.p99_ms:.2f} ms, {self.failed} failed"
        )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (as wrk's histogram reports one), 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[min(int(rank), len(ordered)) - 1]


async def load(
    url: str, loop: str, connections: int, seconds: float, warm_up: float, expected: list[int]
) -> dict[str, float]:
    run = LOOPS[loop]
    conns = [await Connection(url).open() for _ in range(connections)]
    began = time.perf_counter()
    start, stop = began + warm_up, began + warm_up + seconds
    latencies: list[float] = []
    failed = 0
    calls_at_start = [0] * connections

    async def client(k: int) -> None:
        nonlocal failed
        conn, measured = conns[k], False
        while (now := time.perf_counter()) < stop:
            if not measured and now >= start:
                calls_at_start[k], measured = conn.calls, True
            try:
                tokens = await run(conn, SOURCE)
                good = tokens == expected
            except (AnswerError, KeyError, ValueError):
                good = False
            done = time.perf_counter()
            if start <= done <= stop:  # finished in the measured window
                latencies.append(done - now)
                failed += not good

    await asyncio.gather(*(client(k) for k in range(connections)))
    calls = sum(c.calls - s for c, s in zip(conns, calls_at_start, strict=True))
    for c in conns:
        c.close()
    ms = [x * 1000 for x in latencies]
    return {
        "sequences": len(latencies),
        "seconds": seconds,
        "calls": calls,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "failed": failed,
    }


async def decode_all(url: str, loop: str, sources: list[list[int]]) -> list[list[int]]:
    """Each source decoded by `loop`, one after another over one connection."""
    conn = await Connection(url).open()
    try:
        return [await LOOPS[loop](conn, s) for s in sources]
    finally:
        conn.close()


def decode(url: str, loop: str, sources: list[list[int]]) -> list[list[int]]:
    return asyncio.run(decode_all(url, loop, sources))


def measure(
    url: str,
    loop: str,
    connections: int,
    seconds: float,
    name: str,
    warm_up: float = 2,
    expected: list[int] | None = None,
) -> LoopResult:
    """The load generator in a process of its own (as wrk is), so the caller's threads
    take nothing from it."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.client_loops",
            url,
            "--loop",
            loop,
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
            "--warm-up",
            str(warm_up),
            "--expected",
            json.dumps(expected or [40, 36, 20]),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + warm_up + 120,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return LoopResult(
        name=name,
        connections=connections,
        sequences_per_s=data["sequences"] / data["seconds"],
        calls_per_s=data["calls"] / data["seconds"],
        p50_ms=data["p50_ms"],
        p90_ms=data["p90_ms"],
        p99_ms=data["p99_ms"],
        sequences=data["sequences"],
        failed=data["failed"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.client_loops")
    parser.add_argument("url")
    parser.add_argument("--loop", choices=sorted(LOOPS), required=True)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--warm-up", type=float, default=2)
    parser.add_argument("--expected", default="[40, 36, 20]", help="tokens for SOURCE (JSON)")
    args = parser.parse_args()
    coro = load(
        args.url, args.loop, args.connections, args.seconds, args.warm_up, json.loads(args.expected)
    )
    try:
        import uvloop

        result = uvloop.run(coro)
    except ImportError:
        result = asyncio.run(coro)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
