"""The phases of a faults run (warm-up, outage, recovery, steady, kill, drain), what each
may answer, and the table of requests per phase."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bench.load import CONN, TIMEOUT, Event, counts, format_counts, ok_status, percentiles_ms

SESSION_OPS = ("create", "step", "generate", "delete", "delete-again", "get")
KILLED = 1  # the replica killed in the last phase; replica 0 survives


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
    partial: bool = False  # the outage stops some sessions only (a cluster master)


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


def allowed(phase: str, e: Event, tl: Timeline) -> bool:
    ok = ok_status(e.status) or (e.op == "delete-again" and e.status == 404)
    session = e.op in SESSION_OPS
    if phase in ("warm-up", "steady"):
        return ok
    if phase == "outage":
        if tl.partial:
            return ok or (session and e.status == 503) if session else e.status == 200
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
        bad = [e for e in evs if not allowed(p, e, tl)]
        rows.append(
            f"{p:<11} {b - a:5.1f} {len(evs) / max(b - a, 1e-3):7.0f} {p50:7.2f} {p99:8.2f}  "
            f"{format_counts(pred):<28} {format_counts(sess):<40} "
            f"{'predict 200, session 2xx or 503' if p == 'outage' and tl.partial else ALLOWED[p]}"
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
