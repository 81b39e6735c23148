"""Faults: Redis stopped and started again, then a replica killed, under mixed load.

python -m bench faults [--outage shutdown|pause] [--outage-seconds 5] [--connections 64]

One redis-server (append-only file, fsync on every write) and two replicas
(`python -m service serve`, Redis session backend); 64 workers, each with a keep-alive
connection to both replicas, choosing one at random per request (no load balancer). The mix:

- predict (30%): must answer 200 in every phase, Redis or not (it needs no Redis);
- reverse sessions (10%): create, generate (checked against the unloaded predict answer),
  delete; not retried, they only add load;
- tracked memory sessions (60%): every change (step, or generate once it has an output to
  feed back) carries a fresh `Idempotency-Key`; a change without a 2xx (503, 409, a
  transport failure) is sent again with the same key and body, to the other replica after
  a transport failure, with exponential backoff (50 ms .. 1 s) within --budget seconds,
  until it is acknowledged. The worker records what was acknowledged: inputs in order
  (for a generate, the fed-back values: the previous output, then its own outputs) and
  outputs. Sessions are kept (not deleted) until the check at the end.

Phases: warm-up; Redis stopped (`shutdown`: SIGTERM, Redis's clean shutdown, then started
again with the same port and directory: an honest restart that keeps its data only
because of its persistence; `pause`: SIGSTOP, then SIGCONT: a hung Redis whose buffered
commands run after it wakes) for --outage-seconds; recovery (until each replica has served
a session call again, without restarting anything); steady; one replica SIGKILLed; more
load on the survivor; drain (pending retries finish). Then every tracked session is read
on the survivor: `steps` must equal the acknowledged count (fewer: lost; more: applied
twice), and a fresh session fed the acknowledged inputs in one request must give the
acknowledged outputs and the same state (within 1e-5). Exit status 1 if any rule fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.load import (
    CONN,
    TIMEOUT,
    Checked,
    Conn,
    Event,
    Recorder,
    RedisProcess,
    Reply,
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
from bench.wrk import ROOT, free_port, wait_ready
from service.progress import Stages, bars

SESSION_OPS = ("create", "step", "generate", "delete", "delete-again", "get")
KILLED = 1  # the replica killed in the last phase; replica 0 survives
STATE_RTOL = STATE_ATOL = 1e-5
REPLAY_CHUNK = 500  # values per replay request (SERVICE_MAX_SEQUENCE_LENGTH is 1024)


# ---- replicas ----------------------------------------------------------------------------


@dataclass
class Replica:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None


def start_replicas(env: dict[str, str], logs: Path, replicas: list[Replica], n: int = 2) -> None:
    """Start n servers at once (their TensorFlow loads overlap), added to `replicas` as
    they start (so that the caller stops them whatever happens), then wait for /readyz."""
    for i in range(n):
        port = free_port()
        log = logs / f"replica-{i}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve"],
                cwd=ROOT,
                env={**os.environ, **env, "SERVICE_PORT": str(port)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        replicas.append(Replica(process, f"http://127.0.0.1:{port}", log))
    deadline = time.monotonic() + 240
    for r in replicas:
        wait_ready(r.url, r.process, deadline, f"replica {r.url} (log {r.log})", r.log.read_text)


def stop_replicas(replicas: list[Replica]) -> None:
    for r in replicas:
        if r.alive():
            r.process.terminate()
    for r in replicas:
        try:
            r.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            r.process.kill()
            r.process.wait()


# ---- tracked sessions --------------------------------------------------------------------


@dataclass
class Pending:
    """A change that had no 2xx within the retry budget: sent again at the end."""

    op: str
    body: dict[str, Any]
    key: str


@dataclass
class Tracked:
    sid: str
    target: int  # values to acknowledge before the worker moves on to a new session
    inputs: list[int] = field(default_factory=list)  # acknowledged, in order
    outputs: list[int] = field(default_factory=list)
    acked: int = 0  # acknowledged change requests
    pending: Pending | None = None
    rejected: list[str] = field(default_factory=list)  # 4xx answers to a change


@dataclass
class Tally:
    changes: int = 0  # changes attempted
    retried: int = 0  # acknowledged after more than one attempt
    replayed: int = 0  # answered with Idempotent-Replayed: true (the first answer again)
    attempts: int = 0
    max_attempts: int = 0
    count_mismatch: int = 0  # an answer's `steps` differs from the acknowledged count
    examples: list[str] = field(default_factory=list)

    def mismatch(self, what: str) -> None:
        self.count_mismatch += 1
        if len(self.examples) < 5:
            self.examples.append(what)


@dataclass
class Run:
    pool: list[list[int]]
    answers: list[list[int]]
    budget: float
    tracked: list[Tracked] = field(default_factory=list)
    tally: Tally = field(default_factory=Tally)
    checked: Checked = field(default_factory=Checked)
    churn_left: list[str] = field(default_factory=list)  # reverse sessions not deleted


def acknowledge(t: Tracked, op: str, body: dict[str, Any], answer: dict[str, Any]) -> None:
    outputs = [int(x) for x in answer["outputs"]]
    # a generate feeds back the previous output, then each of its own outputs but the last
    fed = [int(x) for x in body["inputs"]] if op == "step" else [t.outputs[-1], *outputs[:-1]]
    t.inputs += fed
    t.outputs += outputs
    t.acked += 1


async def change(
    w: Worker, run: Run, t: Tracked, op: str, body: dict[str, Any], key: str | None = None
) -> bool:
    """Send one change until it is acknowledged (same key, same body); False if it was
    refused with a 4xx (recorded) or the budget ran out (left pending)."""
    key = key or uuid.uuid4().hex
    headers = {"Idempotency-Key": key}
    path = f"/v1/sessions/{t.sid}/{op}"
    deadline = time.monotonic() + run.budget
    delay, avoid, attempts = 0.05, None, 0
    run.tally.changes += 1
    while True:
        server = w.servers.pick(w.rng, avoid)
        reply, i = await w.call(op, "POST", path, body, server=server, headers=headers)
        attempts += 1
        run.tally.attempts += 1
        if reply.ok:
            answer = reply.json()
            before = len(t.inputs)
            acknowledge(t, op, body, answer)
            if answer["steps"] != len(t.inputs):
                run.tally.mismatch(
                    f"{t.sid[:8]} {op} {body} key {key[:8]} attempt {attempts}: answer says "
                    f"steps {answer['steps']}, acknowledged {before} + {len(t.inputs) - before}"
                )
            run.tally.retried += attempts > 1
            run.tally.replayed += reply.headers.get("idempotent-replayed") == "true"
            run.tally.max_attempts = max(run.tally.max_attempts, attempts)
            return True
        if reply.status in (CONN, TIMEOUT):
            avoid = i  # maybe dead: the other replica next
        elif reply.status in (503, 409):  # store unavailable / busy; "nothing applied, retry"
            avoid = None
        else:
            t.rejected.append(f"{op} {body}: {reply.status} {reply.body[:200]!r}")
            return False
        if time.monotonic() > deadline:
            t.pending = Pending(op, body, key)
            return False
        await asyncio.sleep(delay * (0.5 + w.rng.random()))
        delay = min(delay * 2, 1.0)


async def tracked_op(w: Worker, run: Run, t: Tracked | None) -> Tracked | None:
    rng = w.rng
    if t is None:
        reply, _ = await w.call("create", "POST", "/v1/sessions", {"model": "memory"})
        if not reply.ok:
            await asyncio.sleep(0.05)
            return None
        t = Tracked(reply.json()["session_id"], target=rng.randint(100, 300))
        run.tracked.append(t)
        return t
    if len(t.inputs) >= t.target:
        return None  # kept for the check; the next op starts a new session
    if t.outputs and rng.random() < 0.15:
        ok = await change(w, run, t, "generate", {"max_steps": rng.randint(1, 3)})
    else:
        values = [rng.randint(0, 4) for _ in range(rng.randint(1, 3))]
        ok = await change(w, run, t, "step", {"inputs": values})
    return t if ok else None


@dataclass
class Churn:
    sid: str
    deletes: int = 0  # delete attempts so far


async def churn_op(w: Worker, run: Run, held: Churn | None) -> Churn | None:
    """A reverse session: create -> generate (checked) -> delete; nothing retried but the
    delete, which is idempotent: a repeated delete may answer 404 (recorded as
    "delete-again", the one operation where 404 is an expected answer)."""
    if held is None:
        k = w.rng.randrange(len(run.pool))
        reply, _ = await w.call(
            "create", "POST", "/v1/sessions", {"model": "reverse", "source": run.pool[k]}
        )
        if not reply.ok:
            await asyncio.sleep(0.05)
            return None
        sid = reply.json()["session_id"]
        path = f"/v1/sessions/{sid}/generate"
        reply, _ = await w.call("generate", "POST", path, {"max_steps": 3})
        if reply.ok and reply.json()["outputs"] != run.answers[k]:
            run.checked.bad(f"generate {run.pool[k]}: {reply.body[:200]!r}")
        return Churn(sid)
    op = "delete-again" if held.deletes else "delete"
    held.deletes += 1
    reply, _ = await w.call(op, "DELETE", f"/v1/sessions/{held.sid}")
    if reply.ok or (reply.status == 404 and held.deletes > 1):
        return None
    await asyncio.sleep(0.05)
    return held


async def predict_op(w: Worker, run: Run) -> None:
    reply = await predict(w, run.pool, run.answers, run.checked)
    if reply.status in (CONN, TIMEOUT):  # what a load balancer would do: the other one
        await predict(w, run.pool, run.answers, run.checked)


async def worker_loop(w: Worker, run: Run, stop: asyncio.Event) -> None:
    t: Tracked | None = None
    churn: Churn | None = None
    try:
        while not stop.is_set():
            r = w.rng.random()
            if r < 0.3:
                await predict_op(w, run)
            elif r < 0.4:
                churn = await churn_op(w, run, churn)
            else:
                t = await tracked_op(w, run, t)
        for _ in range(3):
            if churn is not None:
                churn = await churn_op(w, run, churn)
        if churn is not None:
            run.churn_left.append(churn.sid)
    finally:
        w.close()


# ---- phases and figures ------------------------------------------------------------------


@dataclass
class Timeline:
    start: float = 0.0
    stopping: float = 0.0  # Redis stop asked
    down: float = 0.0  # Redis gone (exited / stopped)
    restarting: float = 0.0  # restart asked
    up: float = 0.0  # Redis answers PING again
    recovered: list[float] = field(default_factory=list)  # per replica: first 2xx session call
    kill: float = 0.0
    end: float = 0.0


# the bar's stages: start-up, warm-up, outage, recovery, steady, kill, drain, check
FAULT_STAGES = 8
PHASES = ("warm-up", "outage", "transition", "recovery", "steady", "kill", "drain")
ALLOWED = {
    "warm-up": "2xx",
    "outage": "predict 200, session 503",
    "transition": "2xx or 503",
    "recovery": "2xx or 503",
    "steady": "2xx",
    "kill": f"2xx, 503 busy, transport errors to replica {KILLED}",
    "drain": f"2xx, 503 busy, transport errors to replica {KILLED}",
}


def phase_of(e: Event, tl: Timeline) -> str:
    if e.end < tl.stopping:
        return "warm-up"
    if e.start >= tl.down and e.end <= tl.restarting:
        return "outage"
    if e.start >= tl.end:
        return "drain"
    if e.end >= tl.kill:
        return "kill"  # ended after the kill, wherever it started
    if e.start < tl.up:
        return "transition"  # overlaps the stop or the restart
    if e.start < max(tl.recovered):
        return "recovery"
    return "steady"


def allowed(phase: str, e: Event) -> bool:
    ok = ok_status(e.status) or (e.op == "delete-again" and e.status == 404)
    session = e.op in SESSION_OPS
    if phase in ("warm-up", "steady"):
        return ok
    if phase == "outage":
        return e.status == 503 if session else e.status == 200
    if phase in ("transition", "recovery"):
        return ok or (session and e.status == 503)
    # kill, drain: a killed replica's requests fail in transit; the survivor may answer
    # 503 "stayed busy" while a dead holder's session lock runs out (the retry succeeds),
    # but not "store unavailable": Redis is up
    if e.status in (CONN, TIMEOUT):
        return e.server == KILLED
    return ok or (session and e.status == 503 and "busy" in e.detail)


def phase_table(events: list[Event], tl: Timeline) -> tuple[list[str], list[str]]:
    by_phase: dict[str, list[Event]] = {p: [] for p in PHASES}
    for e in events:
        by_phase[phase_of(e, tl)].append(e)
    spans = {
        "warm-up": (tl.start, tl.stopping),
        "outage": (tl.down, tl.restarting),
        "transition": (tl.stopping, tl.up),
        "recovery": (tl.up, max(tl.recovered)),
        "steady": (max(tl.recovered), tl.kill),
        "kill": (tl.kill, tl.end),
    }
    rows = [
        f"{'phase':<11} {'s':>5} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>8}  "
        f"{'predict':<28} {'session calls':<40} allowed"
    ]
    failures = []
    for p in PHASES:
        evs = by_phase[p]
        if not evs and p != "outage":
            continue
        a, b = spans.get(p, (tl.end, max((e.end for e in evs), default=tl.end)))
        p50, p99 = percentiles_ms(evs)
        pred = counts(e for e in evs if e.op not in SESSION_OPS)
        sess = counts(e for e in evs if e.op in SESSION_OPS)
        bad = [e for e in evs if not allowed(p, e)]
        rows.append(
            f"{p:<11} {b - a:5.1f} {len(evs) / max(b - a, 1e-3):7.0f} {p50:7.2f} {p99:8.2f}  "
            f"{format_counts(pred):<28} {format_counts(sess):<40} {ALLOWED[p]}"
            + (f"  ** {len(bad)} not allowed **" if bad else "")
        )
        if bad:
            what = Counter(f"{e.op}->{e.status}@{e.server}" for e in bad)
            examples = {f"{e.op}->{e.status}": e.detail for e in bad}
            first, last = (min(e.start for e in bad) - tl.start, max(e.end for e in bad) - tl.start)
            failures.append(
                f"{p}: {len(bad)} answers not allowed ({first:.2f}s..{last:.2f}s): "
                f"{dict(what)}; e.g. " + "; ".join(f"{k}: {v}" for k, v in examples.items())
            )
    if not by_phase["outage"]:
        failures.append("no request ran inside the outage")
    return rows, failures


# ---- the check ---------------------------------------------------------------------------


@dataclass
class Verdict:
    sessions: int = 0
    acked_changes: int = 0
    acked_steps: int = 0
    lost: int = 0
    double: int = 0
    replay_mismatch: int = 0
    missing: int = 0  # sessions that answer 404
    unresolved: int = 0  # changes never acknowledged, even at the end
    rejected: int = 0
    errors: int = 0  # sessions the check itself could not read or replay
    examples: list[str] = field(default_factory=list)

    def note(self, what: str) -> None:
        if len(self.examples) < 8:
            self.examples.append(what)


async def must(w: Worker, method: str, path: str, body: Any = None) -> Reply:
    for attempt in range(20):
        reply, _ = await w.call("check", method, path, body, server=0)
        if reply.ok or reply.status == 404:
            return reply
        await asyncio.sleep(0.1 * (attempt + 1))
    raise RuntimeError(f"{method} {path}: {reply.status} {reply.body[:300]!r}")


async def replay(w: Worker, inputs: list[int]) -> tuple[list[int], list[np.ndarray]]:
    """A fresh session fed `inputs` (in requests of REPLAY_CHUNK values): outputs, state."""
    sid = (await must(w, "POST", "/v1/sessions", {"model": "memory"})).json()["session_id"]
    outputs: list[int] = []
    for i in range(0, len(inputs), REPLAY_CHUNK):
        answer = await must(
            w, "POST", f"/v1/sessions/{sid}/step", {"inputs": inputs[i : i + REPLAY_CHUNK]}
        )
        outputs += answer.json()["outputs"]
    state = (await must(w, "GET", f"/v1/sessions/{sid}?include_state=true")).json()["state"]
    await must(w, "DELETE", f"/v1/sessions/{sid}")
    return outputs, [np.asarray(s, np.float32) for s in state]


async def check_one(w: Worker, run: Run, t: Tracked, v: Verdict) -> None:
    if t.pending is not None:  # settle it: the same key, now that everything is calm
        p, t.pending = t.pending, None
        if not await change(w, run, t, p.op, p.body, key=p.key):
            v.unresolved += 1
            v.note(f"{t.sid[:8]}: {p.op} {p.body} key {p.key[:8]} never acknowledged")
            return
    v.rejected += len(t.rejected)
    for r in t.rejected:
        v.note(f"{t.sid[:8]}: rejected {r}")
    v.sessions += 1
    v.acked_changes += t.acked
    v.acked_steps += len(t.inputs)
    reply = await must(w, "GET", f"/v1/sessions/{t.sid}?include_state=true")
    if reply.status == 404:
        v.missing += 1
        v.lost += len(t.inputs)
        v.note(f"{t.sid[:8]}: gone (404) with {len(t.inputs)} acknowledged steps")
        return
    info = reply.json()
    steps = int(info["steps"])
    v.lost += max(0, len(t.inputs) - steps)
    v.double += max(0, steps - len(t.inputs))
    if steps != len(t.inputs):
        v.note(f"{t.sid[:8]}: steps {steps} in the store, {len(t.inputs)} acknowledged")
    outputs, state = await replay(w, t.inputs)
    stored = np.concatenate([np.ravel(np.asarray(s, np.float32)) for s in info["state"]])
    fresh = np.concatenate([np.ravel(s) for s in state])
    # the README's bound for states stepped one request at a time vs one call: float32
    # kernels differ by batch size in the last bits
    diff = np.abs(stored - fresh)
    excess = diff - (STATE_ATOL + STATE_RTOL * np.abs(fresh))
    same_state = stored.shape == fresh.shape and bool((excess <= 0).all())
    if outputs != t.outputs or not same_state:
        v.replay_mismatch += 1
        first = next(
            (i for i, (a, b) in enumerate(zip(outputs, t.outputs, strict=False)) if a != b),
            None,
        )
        worst = int(np.argmax(excess)) if stored.shape == fresh.shape else 0
        v.note(
            f"{t.sid[:8]} ({len(t.inputs)} steps, {t.acked} changes): replay differs: outputs "
            + ("same" if first is None else f"from step {first}")
            + (
                ", state same"
                if same_state
                else f", state element {worst}: stored {stored[worst]!r}, replayed "
                f"{fresh[worst]!r} (|diff| {diff[worst]:.3g}; largest |diff| {diff.max():.3g})"
            )
        )
    await must(w, "DELETE", f"/v1/sessions/{t.sid}")


async def check(servers: Servers, run: Run, concurrency: int = 16) -> Verdict:
    v = Verdict()
    queue: asyncio.Queue[Tracked] = asyncio.Queue()
    for t in run.tracked:
        queue.put_nowait(t)

    async def one(seed: int) -> None:
        w = Worker(servers, seed)
        try:
            while not queue.empty():
                t = queue.get_nowait()
                try:
                    await check_one(w, run, t, v)
                except RuntimeError as e:
                    v.errors += 1
                    v.note(f"{t.sid[:8]}: check failed: {e}")
        finally:
            w.close()

    await asyncio.gather(*(one(10_000 + i) for i in range(concurrency)))
    return v


# ---- the run -----------------------------------------------------------------------------


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
    redis: RedisProcess, replicas: list[Replica], args: argparse.Namespace, stages: Stages
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
    tl = Timeline(start=time.monotonic())
    workers = [Worker(servers, seed=1 + i) for i in range(args.connections)]
    tasks = [asyncio.create_task(worker_loop(w, run, stop)) for w in workers]
    notes: list[str] = []
    failures: list[str] = []

    def say(what: str) -> None:
        print(f"{time.monotonic() - tl.start:7.2f}s  {what}", flush=True)

    say(
        f"load: {args.connections} connections over 2 replicas (pids "
        f"{', '.join(str(r.process.pid) for r in replicas)}), redis on port {redis.port}"
    )
    stages.start("warm-up")
    await asyncio.sleep(args.warmup)

    stages.start("Redis outage")
    tl.stopping = time.monotonic()
    if args.outage == "shutdown":
        await asyncio.to_thread(redis.shutdown)
    else:
        redis.pause()
    tl.down = time.monotonic()
    say(f"redis {'shut down (SIGTERM)' if args.outage == 'shutdown' else 'paused (SIGSTOP)'}")
    await asyncio.sleep(args.outage_seconds / 2)
    probes = await asyncio.gather(*(readyz(r.url) for r in replicas))
    say(f"/readyz during the outage: {', '.join(probes)}")
    await asyncio.sleep(max(0.0, tl.down + args.outage_seconds - time.monotonic()))
    tl.restarting = time.monotonic()
    if args.outage == "shutdown":
        await asyncio.to_thread(redis.start)
    else:
        redis.resume()
    tl.up = time.monotonic()
    say(f"redis back ({tl.up - tl.down:.2f} s after it went away)")
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
    os.kill(replicas[KILLED].process.pid, signal.SIGKILL)
    say(f"replica {KILLED} killed (SIGKILL, pid {replicas[KILLED].process.pid})")
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

    events = recorder.all
    rows, bad = phase_table([e for e in events if e.op != "check"], tl)
    failures += bad
    print()
    print(f"outage: {args.outage}, {tl.restarting - tl.down:.2f} s without Redis")
    print("\n".join(rows))
    print("(a 404 to a repeated delete, after one lost in transit, counts as 2xx)")
    print()
    refused = [
        e.end - tl.up
        for e in events
        if e.op in SESSION_OPS
        and e.start >= tl.up
        and e.end < tl.kill
        and not ok_status(e.status)
        and not (e.op == "delete-again" and e.status == 404)
    ]
    last_refused = f"+{max(refused):.3f} ({len(refused)} refused)" if refused else "none"
    t = run.tally
    figures = [
        ("Redis down (s)", f"{tl.restarting - tl.down:.2f}"),
        (
            "recovery after Redis returned (s)",
            ", ".join(f"replica {i}: {x - tl.up:.3f}" for i, x in enumerate(tl.recovered)),
        ),
        ("last session call refused after Redis returned (s)", last_refused),
        ("replicas restarted", "none (both served through the outage, same pids)"),
        ("tracked sessions", str(verdict.sessions)),
        ("acknowledged changes (step/generate requests)", str(verdict.acked_changes)),
        ("acknowledged steps (values)", str(verdict.acked_steps)),
        ("changes retried before acknowledged", f"{t.retried} (most attempts {t.max_attempts})"),
        ("retries answered as replays (Idempotent-Replayed)", str(t.replayed)),
        ("answers whose steps != acknowledged count", str(t.count_mismatch)),
        ("lost steps (must be 0)", str(verdict.lost)),
        ("double-applied steps (must be 0)", str(verdict.double)),
        ("sessions whose replay differs (must be 0)", str(verdict.replay_mismatch)),
        ("sessions gone (404)", str(verdict.missing)),
        ("changes never acknowledged", str(verdict.unresolved)),
        ("changes refused with a 4xx", str(verdict.rejected)),
        ("sessions the check could not read", str(verdict.errors)),
        ("wrong predict/generate answers", str(run.checked.wrong)),
    ]
    width = max(len(k) for k, _ in figures)
    for k, val in figures:
        print(f"{k:<{width}}  {val}")
    for what in verdict.examples + t.examples + run.checked.examples + notes:
        print(f"  - {what}")
    for name, n in (
        ("lost steps", verdict.lost),
        ("double-applied steps", verdict.double),
        ("sessions whose replay differs", verdict.replay_mismatch),
        ("sessions gone", verdict.missing),
        ("changes never acknowledged", verdict.unresolved),
        ("changes refused with a 4xx", verdict.rejected),
        ("sessions the check could not read", verdict.errors),
        ("wrong answers", run.checked.wrong),
    ):
        if n:
            failures.append(f"{name}: {n}")
    print("PASS" if not failures else "FAIL:\n  " + "\n  ".join(failures), flush=True)
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    import uvloop

    logs = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    redis = RedisProcess(persistent=True)
    redis.start()
    env = {
        "SERVICE_LOG_LEVEL": "warning",
        "SERVICE_ACCESS_LOG": "false",
        "SERVICE_DEFAULT_MODEL": "reverse",
        "SERVICE_SESSION_BACKEND": "redis",
        "SERVICE_REDIS_URL": redis.url,
    }
    replicas: list[Replica] = []
    result = 1
    try:
        with bars() as progress:
            stages = Stages(progress, f"faults ({args.outage})", FAULT_STAGES)
            stages.start("starting 2 replicas")
            start_replicas(env, logs, replicas)
            result = uvloop.run(drive(redis, replicas, args, stages))
    finally:
        stop_replicas(replicas)
        if (redis.dir / "redis.log").exists():
            shutil.copy(redis.dir / "redis.log", logs / "redis.log")
        redis.close()
    if result == 0:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"replica and redis logs: {logs}")
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--outage",
        choices=("shutdown", "pause"),
        default="shutdown",
        help="shutdown: SIGTERM then a new redis-server on the same port and data "
        "(append-only, fsync always); pause: SIGSTOP then SIGCONT",
    )
    parser.add_argument("--outage-seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--steady", type=float, default=10.0, help="after recovery")
    parser.add_argument("--after-kill", type=float, default=10.0)
    parser.add_argument("--budget", type=float, default=60.0, help="retry budget per change")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
