"""Workers: one server process or two on this machine, sessions in Redis.

python -m bench workers [--seconds 6] [--rounds 3] [--out bench/results]

The service runs one uvicorn worker per process (service/server.py); more processes
are replicas sharing a Redis session store (SERVICE_SESSION_BACKEND=redis), as
docker-compose.yml runs them behind nginx. Here there is no load balancer: one wrk
process per replica, each at its share of the connections (wrk cannot spread one run
over ports), all started together; requests/s are summed, p99 is the larger of the
replicas' p99s. Three set-ups, all four processes (a server with the in-process store,
Redis, two replicas on it) started together and kept up, idle when not loaded:

- 1 process, in-process session store (the default; the reference);
- 1 process, Redis store (the first replica alone);
- 2 processes, Redis store.

The set-ups take turns, --rounds times (this machine is shared: a slow minute then
falls on every set-up, not on one); the table gives each figure's median over the
rounds and the range of requests/s.

Loads: `/predict` (reverse, one source, exact answer checked) at 32 connections and
session steps (memory, 64 sessions, one value per request) at 64. Redis is a
redis-server of our own without persistence (tests/harness/redis.py). Prints and writes
`workers.md` to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from bench.wrk import LoadResult, post_script, sessions_script, wrk
from tests.harness import ROOT, RedisServer, Replica, redis_env
from tests.harness.replicas import start_all, stop_all

ENV = {"SERVICE_LOG_LEVEL": "warning", "SERVICE_ACCESS_LOG": "false", "SERVICE_WARMUP": "all"}
SOURCE = [20, 36, 40, 10, 34, 28]
PREDICT = "/v1/models/reverse/predict"
PREDICT_CONNECTIONS, STEP_CONNECTIONS, SESSIONS = 32, 64, 64


@dataclass
class Figure:
    setup: str
    processes: int
    load: str
    connections: int
    rps: float
    p50_ms: float  # the larger of the replicas' figures
    p99_ms: float
    failed: int
    server_cores: float = 0.0  # the server processes' CPU time over the run's wall time


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes so far (/proc/PID/stat)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def loaded(pids: list[int], load: Callable[[], list[LoadResult]]) -> tuple[list[LoadResult], float]:
    """`load`'s results and the cores the servers kept busy meanwhile (warm-up included)."""
    cpu, began = cpu_seconds(pids), time.perf_counter()
    runs = load()
    return runs, (cpu_seconds(pids) - cpu) / (time.perf_counter() - began)


def combine(setup: str, processes: int, load: str, runs: list[LoadResult]) -> Figure:
    return Figure(
        setup,
        processes,
        load,
        sum(r.connections for r in runs),
        sum(r.rps for r in runs),
        max(r.p50_ms for r in runs),
        max(r.p99_ms for r in runs),
        sum(r.failed for r in runs),
    )


def split(items: list[str], parts: int) -> list[list[str]]:
    return [items[k::parts] for k in range(parts)]


def measure(
    urls: list[str], pids: list[int], ids: list[str], setup: str, seconds: int
) -> list[Figure]:
    """`/predict` then session steps (on `ids`), one wrk per URL at once, connections and
    sessions split evenly."""
    n = len(urls)
    body = json.dumps({"inputs": [SOURCE]})
    answers = {
        httpx.post(f"{u}{PREDICT}", content=body, headers={"content-type": "application/json"}).text
        for u in urls
    }
    assert len(answers) == 1, answers
    script = post_script(PREDICT, body, answers.pop())
    with ThreadPoolExecutor(n) as pool:
        predict, predict_cores = loaded(
            pids,
            lambda: list(
                pool.map(
                    lambda u: wrk(u, script, PREDICT_CONNECTIONS // n, seconds, "predict"),
                    urls,
                )
            ),
        )
        steps, steps_cores = loaded(
            pids,
            lambda: list(
                pool.map(
                    lambda u, group: wrk(
                        u, sessions_script(group), STEP_CONNECTIONS // n, seconds, "session step"
                    ),
                    urls,
                    split(ids, n),
                )
            ),
        )
    figures = [
        replace(combine(setup, n, "`/predict`", predict), server_cores=predict_cores),
        replace(combine(setup, n, "session steps", steps), server_cores=steps_cores),
    ]
    for f in figures:
        print(
            f"{f.setup}: {f.load}, {f.connections} connections: {f.rps:,.0f} requests/s, "
            f"p99 {f.p99_ms:.2f} ms, {f.failed} failed, servers busy {f.server_cores:.2f} cores",
            flush=True,
        )
    return figures


def sessions(url: str) -> list[str]:
    with httpx.Client(base_url=url, timeout=30) as http:
        return [
            http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]
            for _ in range(SESSIONS)
        ]


def median(figures: list[Figure]) -> tuple[Figure, float, float]:
    """The rounds' medians, figure by figure (failures summed); the range of requests/s."""
    rps = [f.rps for f in figures]
    return (
        replace(
            figures[0],
            rps=statistics.median(rps),
            p50_ms=statistics.median(f.p50_ms for f in figures),
            p99_ms=statistics.median(f.p99_ms for f in figures),
            server_cores=statistics.median(f.server_cores for f in figures),
            failed=sum(f.failed for f in figures),
        ),
        min(rps),
        max(rps),
    )


def report(figures: list[Figure], when: str, seconds: int, rounds: int) -> str:
    kinds = list(dict.fromkeys((f.setup, f.load) for f in figures))
    rows = [median([f for f in figures if (f.setup, f.load) == k]) for k in kinds]
    base = {f.load: f.rps for f, _, _ in rows if f.processes == 1 and "in-process" in f.setup}
    lines = [
        f"# Workers: one server process or two ({when})",
        "",
        f"`python -m bench workers`: {rounds} round{'s' if rounds != 1 else ''}, the set-ups "
        "taking turns; one wrk per "
        f"process (its share of the connections), 2 s warm-up then {seconds} s measured; "
        "requests/s summed over the processes, p50 and p99 the larger of their figures; "
        "server cores: the server processes' CPU time over the run (warm-up included) per "
        "second. Medians over the rounds; wrk and Redis run on the same cores.",
        "",
        "| processes | session store | load | connections | requests/s (range) | vs 1 process, "
        "in-process store | p50 ms | p99 ms | server cores | failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f, low, high in rows:
        store = "in-process" if "in-process" in f.setup else "Redis"
        lines.append(
            f"| {f.processes} | {store} | {f.load} | {f.connections} | {f.rps:,.0f} "
            f"({low:,.0f}-{high:,.0f}) | {f.rps / base[f.load]:.2f}x | {f.p50_ms:.2f} | "
            f"{f.p99_ms:.2f} | {f.server_cores:.2f} | {f.failed} |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    start_load = os.getloadavg()[0]
    figures: list[Figure] = []
    redis = RedisServer().start()
    group = [Replica(ENV), Replica(redis_env(redis, **ENV)), Replica(redis_env(redis, **ENV))]
    try:
        start_all(group, timeout=300)
        memory, first, second = group
        setups = [
            ("1 process, in-process store", [memory], sessions(memory.url)),
            ("1 process, Redis store", [first], sessions(first.url)),
            ("2 processes, Redis store", [first, second], sessions(first.url)),
        ]
        for _ in range(args.rounds):
            for label, servers, ids in setups:
                figures += measure(
                    [r.url for r in servers], [r.pid for r in servers], ids, label, args.seconds
                )
    finally:
        stop_all(group)
        redis.close()
    when = (
        f"{began}, {os.cpu_count()} cores, {platform.machine()}; load average "
        f"{start_load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )
    text = report(figures, when, args.seconds, args.rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "workers.md").write_text(text)
    print(text)
    return 0 if all(f.failed == 0 for f in figures) else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=int, default=6, help="per load run")
    parser.add_argument("--rounds", type=int, default=3, help="turns of every set-up")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
