"""The workers' mix: tracked memory sessions (every change retried with its Idempotency-Key
until acknowledged, and what was acknowledged recorded), reverse sessions that only add
load, and predict calls."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.load import CONN, TIMEOUT, Checked, Worker, predict


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
