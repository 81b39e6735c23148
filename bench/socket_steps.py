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

The load itself: bench/socket_client.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from bench.socket_client import DRIVERS, socket_url
from bench.wrk import LoadResult

NAME = "session step (WebSocket)"


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
    `python -m bench.socket_client` in a process of its own."""
    mismatches = verify(url, model) if check else 0
    argv = [sys.executable, "-m", "bench.socket_client", url, "--model", model]
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
