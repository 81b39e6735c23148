"""Soak: mixed load on one real server for minutes; does its memory stay flat?

python -m bench soak [--minutes 5] [--interval 30] [--connections 64] [--backend memory|redis]

64 workers (one keep-alive connection each) run a mix: predict (checked against the
server's own unloaded answers), and session lifecycles (create, steps, generate, reads,
delete) on the memory and reverse models. Every worker holds at most one live session, so
the live count stays bounded (<= connections) and RSS has no legitimate reason to grow.
Every interval prints: elapsed, requests/s, counts by status, p50/p99 ms, server RSS.
Warm-up is the first interval (the first minute from --minutes 5 on); at the end the RSS
growth from the end of warm-up to the last sample must stay under 10%. Exit status 1 on
that, on any non-2xx answer or transport failure, or on a wrong predict answer.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from rich.progress import Progress

from bench.load import (
    Checked,
    Event,
    Recorder,
    Servers,
    Worker,
    counts,
    expected_answers,
    format_counts,
    ok_status,
    percentiles_ms,
    predict,
    sources,
)
from bench.wrk import rss_bytes
from service.progress import bars
from tests.harness import RedisServer, running

PREDICT_SHARE = 0.4
RSS_LIMIT_PCT = 10.0


@dataclass
class Live:
    """Sessions the workers hold right now (for the printout) and the most ever held."""

    now: int = 0
    peak: int = 0

    def add(self, n: int) -> None:
        self.now += n
        self.peak = max(self.peak, self.now)


@dataclass
class Held:
    sid: str
    model: str
    left: int  # operations before the delete
    stepped: bool = False


@dataclass
class Soak:
    pool: list[list[int]]
    answers: list[list[int]]
    checked: Checked = field(default_factory=Checked)
    live: Live = field(default_factory=Live)


async def session_op(w: Worker, held: Held | None, soak: Soak) -> Held | None:
    """One operation of this worker's session lifecycle; returns what it holds after."""
    rng = w.rng
    if held is None:
        if rng.random() < 0.5:
            body: dict[str, object] = {"model": "memory"}
            model, left = "memory", rng.randint(5, 30)
        else:
            body = {"model": "reverse", "source": soak.pool[rng.randrange(len(soak.pool))]}
            model, left = "reverse", rng.randint(1, 5)
        reply, _ = await w.call("create", "POST", "/v1/sessions", body)
        if not reply.ok:
            return None
        soak.live.add(1)
        return Held(reply.json()["session_id"], model, left)
    path = f"/v1/sessions/{held.sid}"
    if held.left <= 0:
        reply, _ = await w.call("delete", "DELETE", path)
        if reply.ok or reply.status == 404:
            soak.live.add(-1)
            return None
        return held  # try the delete again next time
    held.left -= 1
    r = rng.random()
    if held.model == "memory":
        if r < 0.1:
            await w.call("get", "GET", path)
        elif r < 0.2 and held.stepped:
            await w.call("generate", "POST", f"{path}/generate", {"max_steps": rng.randint(1, 3)})
        else:
            values = [rng.randint(0, 4) for _ in range(rng.randint(1, 3))]
            reply, _ = await w.call("step", "POST", f"{path}/step", {"inputs": values})
            held.stepped = held.stepped or reply.ok
    elif r < 0.7:
        await w.call("generate", "POST", f"{path}/generate", {"max_steps": rng.randint(1, 3)})
    else:
        await w.call("step", "POST", f"{path}/step", {"inputs": [rng.randint(1, 50)]})
    return held


async def worker_loop(w: Worker, soak: Soak, stop: asyncio.Event) -> None:
    held: Held | None = None
    try:
        while not stop.is_set():
            if w.rng.random() < PREDICT_SHARE:
                await predict(w, soak.pool, soak.answers, soak.checked)
            else:
                held = await session_op(w, held, soak)
        if held is not None:  # leave nothing behind
            reply, _ = await w.call("delete", "DELETE", f"/v1/sessions/{held.sid}")
            if reply.ok or reply.status == 404:
                soak.live.add(-1)
    finally:
        w.close()


def line(elapsed: float, seconds: float, events: list[Event], rss_mb: float, live: int) -> str:
    p50, p99 = percentiles_ms(events)
    return (
        f"{elapsed:6.0f}s  {len(events) / seconds:8.1f} req/s  p50 {p50:6.2f} ms  "
        f"p99 {p99:7.2f} ms  RSS {rss_mb:7.1f} MB  live sessions {live:3d}  "
        f"{format_counts(counts(events))}"
    )


async def drive(url: str, pid: int, args: argparse.Namespace, progress: Progress) -> int:
    recorder = Recorder()
    servers = Servers([url], recorder)
    first = Worker(servers, seed=0)
    pool = sources(256, seed=5)
    answers = await expected_answers(first, pool)
    first.close()
    recorder.take()
    soak = Soak(pool, answers)
    stop = asyncio.Event()
    workers = [Worker(servers, seed=1 + i) for i in range(args.connections)]
    tasks = [asyncio.create_task(worker_loop(w, soak, stop)) for w in workers]

    total = args.minutes * 60.0
    warm_up = 60.0 if args.minutes >= 5 else args.interval
    start = last = time.monotonic()
    baseline: float | None = None
    baseline_at = 0.0
    samples: list[tuple[float, float]] = []
    after: list[Event] = []
    overall: Counter[str] = Counter()
    print(
        f"soak: {args.connections} connections, {args.minutes:g} min, every {args.interval:g} s,"
        f" backend {args.backend}, server pid {pid}; warm-up {warm_up:g} s",
        flush=True,
    )
    clock = progress.add_task(f"soak, {args.connections} connections (seconds)", total=total)
    tick = 0
    while True:
        tick += 1
        target = min(tick * args.interval, total)
        while (left := start + target - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 1.0))  # the bar moves every second, not per interval
            progress.update(clock, completed=min(time.monotonic() - start, total))
        now = time.monotonic()
        events = recorder.take()
        rss = rss_bytes(pid) / 2**20
        elapsed = now - start
        samples.append((elapsed, rss))
        overall.update(counts(events))
        print(line(elapsed, now - last, events, rss, soak.live.now), flush=True)
        if baseline is None and tick * args.interval >= warm_up:
            baseline, baseline_at = rss, elapsed
        elif baseline is not None:
            after.extend(events)
        last = now
        if target >= total:
            break
    stop.set()
    await asyncio.gather(*tasks)
    overall.update(counts(recorder.take()))

    failures = []
    final = samples[-1][1]
    if baseline is None or baseline_at >= samples[-1][0]:
        print("RSS growth after warm-up: no sample after warm-up (run longer)")
        growth = 0.0
        failures.append("no RSS sample after warm-up")
    else:
        growth = (final - baseline) / baseline * 100
        peak = max(r for t, r in samples if t >= baseline_at)
        print(
            f"RSS after warm-up ({baseline_at:.0f} s) {baseline:.1f} MB, at the end {final:.1f} MB"
            f" (peak {peak:.1f} MB): growth {growth:+.2f}% (limit {RSS_LIMIT_PCT:g}%)"
        )
        if growth >= RSS_LIMIT_PCT:
            failures.append(f"RSS grew {growth:.2f}%")
    if after:
        p50, p99 = percentiles_ms(after)
        span = samples[-1][0] - baseline_at
        print(
            f"after warm-up: {len(after)} requests, {len(after) / span:.1f} req/s, "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
        )
    print(f"whole run: {format_counts(overall)}; live sessions peak {soak.live.peak}")
    bad = {k: v for k, v in overall.items() if not (k.isdigit() and ok_status(int(k)))}
    if bad:
        failures.append(f"non-2xx answers or transport failures: {bad}")
    if soak.checked.wrong:
        failures.append(f"{soak.checked.wrong} wrong predict answers: {soak.checked.examples}")
    print("PASS" if not failures else "FAIL: " + "; ".join(failures), flush=True)
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    import uvloop

    env = {
        "SERVICE_LOG_LEVEL": "warning",
        "SERVICE_ACCESS_LOG": "false",
        "SERVICE_DEFAULT_MODEL": "reverse",
        "SERVICE_WARMUP": "all",  # nothing compiles during the measurement
    }
    redis = None
    if args.backend == "redis":
        redis = RedisServer(persistent=False)
        redis.start()
        env |= {"SERVICE_SESSION_BACKEND": "redis", "SERVICE_REDIS_URL": redis.url}
    try:
        with running(env, timeout=180) as (url, served), bars() as progress:
            return uvloop.run(drive(url, served.process.pid, args, progress))
    finally:
        if redis is not None:
            redis.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between lines")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backend", choices=("memory", "redis"), default="memory")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
