"""Capacity: how many replicas and Redis shards for N concurrent sessions at M steps/s,
from figures measured here and now.

python -m bench capacity [--sessions 1000000] [--steps-per-second 5000] [--seconds 10]

Measured, on this machine, in this run:
1. bytes per session for each shipped model, created through the replica below: in Redis
   (`MEMORY USAGE` of the records, plus their share of the partitions' expiry indexes, over
   200 sessions) and in the process (tracemalloc over 200 copies in the in-process store);
2. session steps per second through one replica (`python -m service serve` on the
   shipped models, Redis backend, wrk: 64 connections round-robin over 64 `memory`
   sessions, one value per step), and the Redis CPU time those steps cost (`INFO cpu`
   of the redis-server before and after): a shard's steps/s at one busy core;
3. the time from process start to `/readyz` 200 on the shipped models, and, when an
   image named --image exists (`make container-test` builds it), its size (`docker image
   inspect`) and the time from `docker run` to `/readyz` 200.

Then, with a headroom (--utilisation, 0.7: no replica or shard planned above 70%):
  replicas = ceil(M / (steps/s per replica x utilisation))
  shards   = max(ceil(N x Redis bytes per session / (shard memory x utilisation)),
                 ceil(M / (steps/s per shard x utilisation)))
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import redis

from bench.startup import READY, load_seconds
from bench.wrk import sessions_script, wrk
from service.sessions import codec
from service.sessions.memory import MemorySessionStore
from service.sessions.store import StoredSession, new_session_id
from tests.harness import SHIPPED, RedisServer, free_port, running

SESSIONS = 200  # per model, for the bytes per session
ENV = {"SERVICE_LOG_LEVEL": "warning", "SERVICE_ACCESS_LOG": "false", "SERVICE_WARMUP": "all"}
# what a session is created from, per shipped model (attention models keep the encoded
# source: their bytes grow with its length)
CREATE: dict[str, dict[str, Any]] = {
    "reverse": {"source": [20, 36, 40, 10, 34, 28]},
    "memory": {},
    "dates": {"source": "saturday, november 21, 2026"},
    "dates-transformer": {"source": "saturday, november 21, 2026"},
}


def redis_cpu(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def index_bytes(client: redis.Redis) -> int:
    return sum(client.memory_usage(k, samples=0) or 0 for k in client.scan_iter("s2s:{p*}:index"))


def session_bytes(url: str, client: redis.Redis) -> dict[str, tuple[float, float]]:
    """Per model: (bytes in Redis, bytes in the in-process store) per session."""
    out = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for model, body in CREATE.items():
            before = index_bytes(client)

            def create(_: int, body: dict[str, Any] = body, model: str = model) -> str:
                r = http.post("/v1/sessions", json={"model": model, **body})
                assert r.status_code == 201, r.text
                return str(r.json()["session_id"])

            with ThreadPoolExecutor(16) as pool:
                ids = list(pool.map(create, range(SESSIONS)))
            records = sum(client.memory_usage(f"s2s:s:{i}", samples=0) or 0 for i in ids)
            in_redis = (records + index_bytes(client) - before) / SESSIONS
            record = client.get(f"s2s:s:{ids[0]}")
            assert isinstance(record, bytes)
            stored = codec.decode(ids[0], record, time.time())
            out[model] = (in_redis, asyncio.run(process_bytes(stored)))
    return out


async def process_bytes(session: StoredSession) -> float:
    """tracemalloc over SESSIONS copies kept by the in-process store."""
    store = MemorySessionStore(600, 10 * SESSIONS)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(SESSIONS):
        copy = session.evolve(
            id=new_session_id(),
            states=tuple(s.copy() for s in session.states),
            memory=None if session.memory is None else session.memory.copy(),
        )
        await store.create(copy)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / SESSIONS


def through_one_replica(server: RedisServer, seconds: int) -> dict[str, Any]:
    """A replica on the shipped models with the Redis backend: bytes per session, then
    session steps/s under wrk and the Redis CPU time they cost."""
    env = ENV | {"SERVICE_SESSION_BACKEND": "redis", "SERVICE_REDIS_URL": server.url}
    client = redis.Redis.from_url(server.url)
    with running(env, store=SHIPPED, timeout=240) as (url, _):
        sizes = session_bytes(url, client)
        with httpx.Client(base_url=url, timeout=30) as http:
            ids = [
                http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]
                for _ in range(64)
            ]
        wrk(url, sessions_script(ids), 64, 2, "warm-up", warm_up=0)
        cpu, started = redis_cpu(client), time.perf_counter()
        result = wrk(url, sessions_script(ids), 64, seconds, "session step", warm_up=0)
        cpu, wall = redis_cpu(client) - cpu, time.perf_counter() - started
    client.close()
    return {
        "sizes": sizes,
        "steps_per_s": result.rps,
        "p99_ms": result.p99_ms,
        "failed": result.failed,
        "redis_cpu_s_per_step": cpu / result.requests,
        "redis_busy": cpu / wall,
    }


def image_size(name: str) -> int | None:
    try:
        out = subprocess.run(
            ["docker", "image", "inspect", name, "--format", "{{.Size}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out.stdout.strip()) if out.returncode == 0 else None


def container_ready_seconds(image: str) -> float | None:
    """`docker run` of the image to /readyz 200 (the container's start included)."""
    port = free_port()
    started = time.perf_counter()
    try:
        cid = subprocess.run(
            ["docker", "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8000", image],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        deadline = started + 300
        while time.perf_counter() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return None
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, timeout=60)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=float, default=1_000_000, help="N concurrent sessions")
    parser.add_argument(
        "--steps-per-second", type=float, default=5000, help="M steps/s, all sessions"
    )
    parser.add_argument("--seconds", type=int, default=10, help="the wrk run")
    parser.add_argument("--utilisation", type=float, default=0.7, help="planned busy share")
    parser.add_argument(
        "--shard-memory-gib", type=float, default=8.0, help="a Redis shard's maxmemory"
    )
    parser.add_argument("--image", default="seq2seq-serving:container-test")


def run(args: argparse.Namespace) -> int:
    server = RedisServer().start()
    try:
        steps = through_one_replica(server, args.seconds)
    finally:
        server.close()
    redis_b = {m: b[0] for m, b in steps["sizes"].items()}
    process_b = {m: b[1] for m, b in steps["sizes"].items()}
    ready = load_seconds()[READY]
    size = image_size(args.image)
    in_container = container_ready_seconds(args.image) if size else None

    print("\nbytes per session (as created; attention models: from a 27-character source)")
    print(f"{'model':<20} {'in Redis':>10} {'in process':>11}")
    for m in redis_b:
        print(f"{m:<20} {redis_b[m]:>10,.0f} {process_b[m]:>11,.0f}")
    per_shard = 1 / steps["redis_cpu_s_per_step"]
    print(
        f"\nsession steps through one replica (memory model, Redis backend, 64 connections): "
        f"{steps['steps_per_s']:,.0f}/s, p99 {steps['p99_ms']:.1f} ms, {steps['failed']:.0f} failed"
        f"\nRedis CPU per step: {steps['redis_cpu_s_per_step'] * 1e6:.1f} us (Redis "
        f"{steps['redis_busy']:.0%} busy meanwhile): a shard at one busy core carries "
        f"{per_shard:,.0f} steps/s"
    )
    print(f"start to /readyz 200 on the shipped models: {ready:.1f} s (a process)")
    if size:
        took = f"{in_container:.1f} s" if in_container else "not ready within 300 s"
        print(f"image {args.image}: {size / 1e9:.2f} GB; docker run to /readyz 200: {took}")
    else:
        print(f"image {args.image}: not found (no Docker, or not built: make container-test)")

    n, m, u = args.sessions, args.steps_per_second, args.utilisation
    shard_bytes = args.shard_memory_gib * 2**30
    print(f"\nfor N = {n:,.0f} sessions at M = {m:,.0f} steps/s, planned at {u:.0%}:")
    replicas = math.ceil(m / (steps["steps_per_s"] * u))
    print(f"  replicas = ceil(M / ({steps['steps_per_s']:,.0f} x {u})) = {replicas}")
    for model, b in redis_b.items():
        by_memory = math.ceil(n * b / (shard_bytes * u))
        by_steps = math.ceil(m / (per_shard * u))
        print(
            f"  shards ({model}) = max(ceil(N x {b:,.0f} B / "
            f"({args.shard_memory_gib:g} GiB x {u})), ceil(M / ({per_shard:,.0f} x {u}))) "
            f"= max({by_memory}, {by_steps}) = {max(by_memory, by_steps)}"
        )
    figures = {
        "redis_bytes": redis_b,
        "process_bytes": process_b,
        "steps": steps,
        "steps_per_shard": per_shard,
        "ready_seconds": ready,
        "image_bytes": size,
        "container_ready_seconds": in_container,
    }
    print("\n" + json.dumps(figures, default=float))
    return 0 if steps["failed"] == 0 else 1
