"""Run every benchmark side by side in one run; print and write a markdown table + a plot.

python -m bench [--seconds 6] [--out bench/results]
python -m bench soak [--minutes 5] [--interval 30] [--backend memory|redis]   (bench/soak.py)
python -m bench faults [--outage shutdown|pause] [--cluster]                (bench/faults/)
python -m bench isolation [--seconds 6]                                     (bench/isolation.py)
python -m bench workers [--seconds 6]                                       (bench/workers.py)
python -m bench budget [--requests 4000]                                     (bench/budget.py)
python -m bench sockets [--seconds 6]                                       (bench/socket_steps.py)
python -m bench capacity [--sessions N] [--steps-per-second M]              (bench/capacity.py)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from rich.progress import Progress

from bench import (
    budget,
    capacity,
    faults,
    inprocess,
    isolation,
    peers,
    soak,
    socket_steps,
    startup,
    workers,
)
from bench.wrk import LoadResult, post_script, rss_bytes, sessions_script, wrk
from service.progress import Stages, bars
from tests.harness import ROOT, running

# every graph compiled before measuring (not on a background thread during it)
SERVER_ENV = {
    "SERVICE_LOG_LEVEL": "warning",
    "SERVICE_ACCESS_LOG": "false",
    "SERVICE_WARMUP": "all",
}
CONCURRENCY = (1, 8, 32, 64)
SOURCE = [20, 36, 40, 10, 34, 28]


def compiled(
    url: str,
    models: tuple[str, ...] = ("reverse", "memory"),
    timeout: float = 600,
    headers: dict[str, str] | None = None,
) -> None:
    """Wait until no XLA bucket of `models` is pending: buckets a request met first are
    compiled on background threads, which must not share the CPU with a measurement."""
    deadline = time.monotonic() + timeout
    for model in models:
        while True:
            answer = httpx.get(f"{url}/v1/models/{model}", headers=headers, timeout=30)
            buckets = answer.raise_for_status().json().get("buckets")
            if not buckets or not any(buckets["pending"].values()):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{model}: buckets still compiling: {buckets['pending']}")
            time.sleep(0.5)


def prime(url: str, body: dict[str, object], path: str = "/v1/models/reverse/predict") -> None:
    """One request per batch bucket a load of up to 64 connections can form (each of
    k rows makes a batch of k), then the compiles they started: the measured load then
    meets compiled programs only."""
    for rows in (1, 2, 4, 8, 16, 32, 64):
        inputs = list(body["inputs"]) * rows  # type: ignore[call-overload]
        httpx.post(f"{url}{path}", json={**body, "inputs": inputs}, timeout=120).raise_for_status()
    compiled(url)


def verify_predict(url: str, progress: Progress, n: int = 2000) -> int:
    """Distinct sources sent 32 at a time must equal unbatched in-process decodes."""
    from service.inference.compiled.loader import load_store

    engine = load_store(ROOT / "model_store").get("reverse").compute
    sources = np.random.default_rng(11).integers(1, 51, size=(n, 6)).astype(np.int32)
    one = np.full(1, 3, np.int32)
    expected = [
        engine.decode(s[None], one, False).tokens[0].tolist()
        for s in progress.track(sources, description="unbatched decodes")
    ]

    def ask(source: list[int]) -> list[int]:
        r = httpx.post(f"{url}/v1/models/reverse/predict", json={"inputs": [source]}, timeout=30)
        return list(r.json()["outputs"][0])

    with ThreadPoolExecutor(32) as pool:
        answers = pool.map(ask, sources.tolist())
        got = list(progress.track(answers, total=n, description="/predict, 32 at a time"))
    return sum(g != e for g, e in zip(got, expected, strict=True))


def verify_sessions(url: str, progress: Progress, sessions: int = 64, steps: int = 20) -> int:
    """64 sessions stepped concurrently must equal unbatched in-process replays."""
    from service.inference.compiled.loader import load_store

    model = load_store(ROOT / "model_store").get("memory")
    values = np.random.default_rng(12).integers(0, 5, size=(sessions, steps)).tolist()
    with httpx.Client(base_url=url, timeout=30) as http:
        ids = [
            http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]
            for _ in range(sessions)
        ]

    def drive(k: int) -> tuple[list[int], list[list[float]]]:
        with httpx.Client(base_url=url, timeout=30) as http:
            outs = [
                http.post(f"/v1/sessions/{ids[k]}/step", json={"inputs": [v]}).json()["outputs"][0]
                for v in values[k]
            ]
            state = http.get(f"/v1/sessions/{ids[k]}?include_state=true").json()["state"]
            http.delete(f"/v1/sessions/{ids[k]}")
            return outs, state

    with ThreadPoolExecutor(sessions) as pool:
        driven = pool.map(drive, range(sessions))
        results = list(progress.track(driven, total=sessions, description="sessions stepped"))
    bad = 0
    for k, (outs, state) in enumerate(results):
        replay = model.compute.run(
            np.asarray([values[k]], np.int32), model.spec.zero_states(1), False
        )
        # batched vs unbatched float32 differ in the last bits: the README's 1e-5 bound
        same_state = all(
            np.allclose(s, r[0], rtol=1e-5, atol=1e-5)
            for s, r in zip(state, replay.states, strict=True)
        )
        bad += int(outs != replay.tokens[0].tolist() or not same_state)
    return bad


def session_rss(url: str, pid: int, progress: Progress, count: int = 10_000) -> dict[str, float]:
    def warm(_: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            sid = http.post("/v1/sessions", json={"model": "reverse", "source": SOURCE})
            http.delete(f"/v1/sessions/{sid.json()['session_id']}")

    # the create path warm, at the concurrency measured (its encode batches' buckets
    # compiled) before the first reading
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(warm, range(400)))
    compiled(url)
    time.sleep(0.5)
    before = rss_bytes(pid)

    def create(_: int) -> None:
        r = httpx.post(
            f"{url}/v1/sessions", json={"model": "reverse", "source": SOURCE}, timeout=30
        )
        assert r.status_code == 201, r.text

    with ThreadPoolExecutor(16) as pool:
        created = pool.map(create, range(count))
        list(progress.track(created, total=count, description="sessions for the RSS"))
    time.sleep(0.5)
    after = rss_bytes(pid)
    raw = 2 * 128 * 4
    return {
        "sessions": count,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "bytes_per_session": (after - before) / count,
        "raw_state_bytes": raw,
    }


def http_runs(seconds: int, progress: Progress) -> tuple[list[LoadResult], dict[str, object]]:
    results: list[LoadResult] = []
    extra: dict[str, object] = {}
    runs = Stages(progress, "load runs", 2 * len(CONCURRENCY) + 3)
    echo_body = json.dumps({"inputs": [SOURCE]})
    with running(SERVER_ENV, module=["bench.echo"], timeout=180) as (url, _):
        expected = json.dumps({"outputs": [SOURCE]}, separators=(",", ":"))
        for c in CONCURRENCY:
            runs.start(f"echo, {c} connections")
            results.append(
                wrk(f"{url}/echo", post_script("/echo", echo_body, expected), c, seconds, "echo")
            )
            print(results[-1], flush=True)
    with running(SERVER_ENV, timeout=180) as (url, served):
        body = json.dumps({"inputs": [SOURCE]})
        answer = httpx.post(
            f"{url}/v1/models/reverse/predict",
            content=body,
            headers={"content-type": "application/json"},
        ).text
        prime(url, {"inputs": [SOURCE]})
        for c in CONCURRENCY:
            runs.start(f"predict, {c} connections")
            script = post_script("/v1/models/reverse/predict", body, answer)
            results.append(wrk(url, script, c, seconds, "predict"))
            print(results[-1], flush=True)
        with httpx.Client(base_url=url) as http:
            ids = [
                http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]
                for _ in range(64)
            ]
        runs.start("session step, 64 connections")
        results.append(wrk(url, sessions_script(ids), 64, seconds, "session step"))
        print(results[-1], flush=True)
        runs.start("session step over WebSockets, 64 connections")
        sockets = socket_steps.measure(url, sessions=64, seconds=seconds)  # checked first
        results.append(sockets)
        print(sockets, flush=True)
        extra["socket_mismatches"] = sockets.mismatches
        extra["peers"] = peers.measure(url, seconds, progress)  # bench/peers.py
        extra["predict_mismatches"] = verify_predict(url, progress)
        extra["session_mismatches"] = verify_sessions(url, progress)
        extra["memory"] = session_rss(url, served.process.pid, progress)
    runs.start("predict with API keys and JSON access logs, 32 connections")
    results.append(keyed_predict(seconds))
    print(results[-1], flush=True)
    runs.done()
    extra["load_seconds"] = startup.load_seconds()
    return results, extra


KEY = "bench-key-0123456789abcdef"


def keyed_predict(seconds: int) -> LoadResult:
    """/predict at 32 connections with API keys on and a JSON access line per request."""
    env = {
        **SERVER_ENV,
        "SERVICE_API_KEYS": KEY,
        "SERVICE_ACCESS_LOG": "true",
        "SERVICE_LOG_FORMAT": "json",
        "SERVICE_LOG_LEVEL": "info",
    }
    with running(env, timeout=180) as (url, _):
        body = json.dumps({"inputs": [SOURCE]})
        headers = {"Authorization": f"Bearer {KEY}"}
        answer = httpx.post(
            f"{url}/v1/models/reverse/predict",
            content=body,
            headers={"content-type": "application/json", **headers},
        ).text
        for rows in (1, 2, 4, 8, 16, 32, 64):  # as prime(), with the key
            many = {"inputs": [SOURCE] * rows}
            r = httpx.post(f"{url}/v1/models/reverse/predict", json=many, headers=headers)
            r.raise_for_status()
        compiled(url, ("reverse",), headers=headers)
        script = post_script("/v1/models/reverse/predict", body, answer, headers)
        return wrk(url, script, 32, seconds, "predict, keys + JSON logs")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=int, default=6, help="per load run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    commands = parser.add_subparsers(
        dest="command",
        metavar="{soak,faults,isolation,budget,workers,sockets,startup,capacity}",
    )
    soak.add_arguments(
        commands.add_parser("soak", help="mixed load for minutes: RSS growth, errors, latency")
    )
    faults.add_arguments(
        commands.add_parser(
            "faults",
            help="Redis stopped and restarted (or a cluster master killed), then a replica "
            "killed, under load",
        )
    )
    isolation.add_arguments(
        commands.add_parser("isolation", help="a heavy client next to small requests")
    )
    budget.add_arguments(
        commands.add_parser("budget", help="CPU microseconds per request, by stage, in-process")
    )
    workers.add_arguments(
        commands.add_parser("workers", help="1 and 2 server processes, sessions in Redis")
    )
    socket_steps.add_arguments(
        commands.add_parser("sockets", help="session steps over WebSockets vs echo over HTTP")
    )
    startup.add_arguments(
        commands.add_parser("startup", help="start to /readyz and load times, default settings")
    )
    capacity.add_arguments(
        commands.add_parser(
            "capacity", help="replicas and Redis shards for N sessions at M steps/s"
        )
    )
    args = parser.parse_args()
    if args.command == "capacity":
        raise SystemExit(capacity.run(args))
    if args.command == "startup":
        raise SystemExit(startup.run(args))
    if args.command == "sockets":
        raise SystemExit(socket_steps.run(args, SERVER_ENV))
    if args.command == "workers":
        raise SystemExit(workers.run(args))
    if args.command == "budget":
        raise SystemExit(budget.run(args))
    if args.command == "isolation":
        raise SystemExit(isolation.run(args))
    if args.command == "soak":
        raise SystemExit(soak.run(args))
    if args.command == "faults":
        raise SystemExit(faults.run(args))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    # timings of this very process: bars drawn only between them, by no thread of their own
    with bars(auto_refresh=False) as progress:
        timings, same = inprocess.measure(progress)
        xla_timings = inprocess.measure_xla(progress)
    for t in timings:
        print(t, flush=True)
    print(inprocess.xla_markdown(xla_timings, started), flush=True)
    inprocess.write_xla(args.out, xla_timings, started)
    budgets = budget.measure_all()  # in this process, before any server starts
    budget.write(args.out, budgets, started)
    with bars() as progress:
        loads, extra = http_runs(args.seconds, progress)
    extra["budget"] = budget.table(budgets)

    from bench.report import write

    write(
        args.out,
        timings,
        same,
        loads,
        extra,
        f"{started}, {platform.machine()}, {platform.python_version()}",
        xla_timings,
    )


if __name__ == "__main__":
    main()
