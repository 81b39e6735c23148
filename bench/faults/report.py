"""What a faults run prints: the phase table, the figures, PASS or FAIL."""

from __future__ import annotations

import argparse

from bench.faults.check import Verdict
from bench.faults.outages import MasterKill, RedisOutage
from bench.faults.phases import SESSION_OPS, Timeline, phase_table
from bench.faults.tracked import Run
from bench.load import Event, ok_status


def report(
    args: argparse.Namespace,
    outage: RedisOutage | MasterKill,
    tl: Timeline,
    events: list[Event],
    run: Run,
    verdict: Verdict,
    notes: list[str],
    failures: list[str],
) -> int:
    """Print the figures; 1 if any rule failed (`failures` so far, and the verdict's)."""
    rows, bad = phase_table([e for e in events if e.op != "check"], tl)
    failures += bad
    print()
    print(f"outage: {outage.name}, {tl.restarting - tl.down:.2f} s")
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
        (f"outage: {outage.name} (s)", f"{tl.restarting - tl.down:.2f}"),
        *outage.figures,
        (
            "first session call served after the outage ended (s)",
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
