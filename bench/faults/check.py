"""The check at the end: every tracked session read on the survivor, its step count
against what was acknowledged, and a fresh session fed the acknowledged inputs in one
request must give the acknowledged outputs and the same state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.faults.tracked import Run, Tracked, change
from bench.load import Reply, Servers, Worker

STATE_RTOL = STATE_ATOL = 1e-5
REPLAY_CHUNK = 500  # values per replay request (SERVICE_MAX_SEQUENCE_LENGTH is 1024)


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
