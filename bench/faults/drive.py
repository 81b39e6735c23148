"""One faults run: load on both replicas, Redis stopped and back (or a cluster master
killed and replaced), a replica killed, the drain and the check; then the report."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable

from bench.faults.check import check
from bench.faults.outages import MasterKill, RedisOutage
from bench.faults.phases import KILLED, SESSION_OPS, Timeline
from bench.faults.report import report
from bench.faults.tracked import Run, worker_loop
from bench.load import Conn, Recorder, Servers, Worker, expected_answers, ok_status, sources
from service.progress import Stages
from tests.harness import Replica


async def readyz(url: str) -> str:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = Conn(host, int(port), timeout=5)
    try:
        status, _, body = await conn.request("GET", "/readyz")
        return f"{status} {json.loads(body).get('status')}"
    except Exception as e:  # noqa: BLE001 - reported as it is
        return f"error {e}"
    finally:
        conn.close()


async def wait_for(cond: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def drive(
    outage: RedisOutage | MasterKill,
    replicas: list[Replica],
    args: argparse.Namespace,
    stages: Stages,
) -> int:
    recorder = Recorder(keep_all=True)
    servers = Servers([r.url for r in replicas], recorder)
    first = Worker(servers, seed=0)
    pool = sources(256, seed=5)
    answers = await expected_answers(first, pool)
    first.close()
    recorder.take()
    recorder.all.clear()
    run = Run(pool, answers, args.budget)
    stop = asyncio.Event()
    tl = Timeline(start=time.monotonic(), partial=outage.partial)
    workers = [Worker(servers, seed=1 + i) for i in range(args.connections)]
    tasks = [asyncio.create_task(worker_loop(w, run, stop)) for w in workers]
    notes: list[str] = []
    failures: list[str] = []

    def say(what: str) -> None:
        print(f"{time.monotonic() - tl.start:7.2f}s  {what}", flush=True)

    say(
        f"load: {args.connections} connections over 2 replicas (pids "
        f"{', '.join(str(r.pid) for r in replicas)}), {outage.where()}"
    )
    stages.start("warm-up")
    await asyncio.sleep(args.warmup)

    stages.start("Redis outage")
    tl.stopping = time.monotonic()
    said = await outage.stop()
    tl.down = time.monotonic() if not outage.partial else tl.stopping
    say(said)
    await asyncio.sleep(max(0.0, tl.down + args.outage_seconds / 2 - time.monotonic()))
    probes = await asyncio.gather(*(readyz(r.url) for r in replicas))
    say(f"/readyz during the outage: {', '.join(probes)}")
    await asyncio.sleep(max(0.0, tl.down + args.outage_seconds - time.monotonic()))
    tl.restarting = time.monotonic()
    said = await outage.start()
    tl.up = time.monotonic()
    say(f"{said} ({tl.up - tl.down:.2f} s after it went away)")
    stages.start("recovery")

    found = [float("inf")] * len(replicas)
    seen = 0

    def recovered() -> bool:
        nonlocal seen
        events = recorder.all
        for e in events[seen:]:
            if e.op in SESSION_OPS and ok_status(e.status) and e.end >= tl.up:
                found[e.server] = min(found[e.server], e.end)
        seen = len(events)
        return all(x < float("inf") for x in found)

    if not await wait_for(recovered, 60):
        failures.append("a replica served no session call within 60 s of Redis's return")
    tl.recovered = [min(x, time.monotonic()) for x in found]
    say(
        "session calls succeed again: "
        + ", ".join(f"replica {i} +{x - tl.up:.3f} s" for i, x in enumerate(tl.recovered))
    )
    probes = await asyncio.gather(*(readyz(r.url) for r in replicas))
    say(f"/readyz after recovery: {', '.join(probes)}")
    if not all(r.alive() for r in replicas):
        failures.append("a replica exited during the Redis outage")
    stages.start("steady")
    await asyncio.sleep(args.steady)

    tl.kill = time.monotonic()
    pid = replicas[KILLED].pid
    replicas[KILLED].kill()
    say(f"replica {KILLED} killed (SIGKILL, pid {pid})")
    stages.start(f"replica {KILLED} killed")
    await asyncio.sleep(args.after_kill)
    tl.end = time.monotonic()
    say("load stopped; draining changes still being retried")
    stages.start("drain")
    stop.set()
    await asyncio.gather(*tasks)
    say("drained; checking every tracked session on replica 0")
    stages.start("checking every tracked session")
    if not replicas[0].alive():
        print("FAIL: replica 0 (the survivor) exited; nothing left to check on", flush=True)
        return 1
    verdict = await check(servers, run)
    if run.churn_left:
        notes.append(f"{len(run.churn_left)} reverse sessions left undeleted")
    say("checked")
    stages.done()

    return report(args, outage, tl, recorder.all, run, verdict, notes, failures)
