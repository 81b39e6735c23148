"""The mixed operations both long benchmarks (soak, faults) use: predict calls checked
against the server's own unloaded answers."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bench.load.client import Reply
from bench.load.workers import Worker

PREDICT_PATH = "/v1/models/reverse/predict"


def sources(n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(1, 50) for _ in range(6)] for _ in range(n)]


async def expected_answers(worker: Worker, pool: list[list[int]]) -> list[list[int]]:
    """The server's own answers, one request at a time, before any load: under load
    (batched with others) every answer must be the same tokens."""
    answers = []
    for source in pool:
        reply, _ = await worker.call("baseline", "POST", PREDICT_PATH, {"inputs": [source]})
        if not reply.ok:
            raise RuntimeError(f"baseline predict answered {reply.status}: {reply.body[:300]!r}")
        answers.append(list(reply.json()["outputs"][0]))
    return answers


@dataclass
class Checked:
    """Answers that came back 2xx but differ from what they must be."""

    wrong: int = 0
    examples: list[str] = field(default_factory=list)

    def bad(self, what: str) -> None:
        self.wrong += 1
        if len(self.examples) < 5:
            self.examples.append(what)


async def predict(
    worker: Worker, pool: list[list[int]], answers: list[list[int]], checked: Checked
) -> Reply:
    """One of three predict calls: a checked single source on /v1/models/reverse/predict,
    a batch of 1..4 on /predict (the default model), or the memory model."""
    rng = worker.rng
    r = rng.random()
    if r < 0.6:
        k = rng.randrange(len(pool))
        reply, _ = await worker.call("predict", "POST", PREDICT_PATH, {"inputs": [pool[k]]})
        if reply.ok and reply.json()["outputs"] != [answers[k]]:
            checked.bad(f"predict {pool[k]}: {reply.body[:200]!r}, expected {answers[k]}")
        return reply
    if r < 0.8:
        batch = [pool[rng.randrange(len(pool))] for _ in range(rng.randint(1, 4))]
        reply, _ = await worker.call("predict", "POST", "/predict", {"inputs": batch})
        return reply
    values = [[rng.randint(0, 4) for _ in range(rng.randint(1, 5))]]
    reply, _ = await worker.call(
        "predict", "POST", "/predict", {"model": "memory", "inputs": values}
    )
    return reply
