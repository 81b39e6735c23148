"""Streaming over real HTTP (uvicorn in a thread) on a fake model whose every decoder
step waits for a permit from the test: the first token event arrives while later
tokens are not decoded yet, and a client that goes away stops the decoding, leaving
its session as it stood after the last token sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import httpx
import numpy as np
import pytest
from httpx_sse import connect_sse

from service.app import create_app
from service.config import Settings
from service.inference.model.interface import LoadedModel, ModelSpec, States
from service.inference.model.registry import Registry
from tests.fakes import CounterCompute, model
from tests.harness.threaded import serving_in_thread

pytestmark = pytest.mark.unit
WAIT = 10.0  # seconds: only ever reached if the server is broken


class PermittedCompute(CounterCompute):
    """Once armed, each decoder step takes one permit from `permits` (the test gives
    them) and counts itself in `started` (steps the app runs at start-up are free)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.permits = threading.Semaphore(0)
        self.started = threading.Semaphore(0)
        self.steps = 0
        self.armed = False

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        if not self.armed:
            return super().step(tokens, states)
        self.steps += 1
        self.started.release()
        assert self.permits.acquire(timeout=WAIT), "the test gave no permit"
        return super().step(tokens, states)

    def allow(self, steps: int) -> None:
        for _ in range(steps):
            self.permits.release()


@contextmanager
def serving() -> Iterator[tuple[str, PermittedCompute]]:
    base = model()
    compute = PermittedCompute(base.spec)
    registry = Registry({"counter": {1: LoadedModel(base.spec, compute)}})
    app = create_app(Settings(access_log=False), registry=registry)
    with serving_in_thread(app) as (url, _):
        compute.armed = True
        try:
            yield url, compute
        finally:
            compute.allow(1000)  # never leave a step waiting


def test_the_first_token_arrives_before_the_last_is_decoded() -> None:
    with serving() as (url, compute), httpx.Client(base_url=url, timeout=WAIT) as client:
        body = {"inputs": [[1, 2]], "max_steps": 5, "stream": True}
        compute.allow(1)  # the answer starts once its first token is decoded
        with connect_sse(client, "POST", "/predict", json=body) as events:
            assert events.response.headers["content-type"].startswith("text/event-stream")
            stream = events.iter_sse()
            first = next(stream)
            assert first.event == "token" and first.json()["index"] == 0
            # the second step has started and waits for its permit: nothing after the
            # first token is decoded yet, and the first token is already here
            assert compute.started.acquire(timeout=WAIT) and compute.started.acquire(timeout=WAIT)
            assert compute.steps == 2
            compute.allow(4)
            rest = list(stream)
    assert [e.event for e in rest] == ["token"] * 4 + ["result"]
    tokens = [first.json()["token"]] + [e.json()["token"] for e in rest[:-1]]
    assert rest[-1].json()["outputs"] == [tokens]
    assert compute.steps == 5


def test_a_client_that_goes_away_stops_the_decoding_and_its_session_keeps_what_was_sent() -> None:
    with serving() as (url, compute), httpx.Client(base_url=url, timeout=WAIT) as client:
        created = client.post("/v1/sessions", json={"model": "counter", "source": [1, 2]})
        session = created.json()["session_id"]
        body = {"max_steps": 50, "stream": True}
        compute.allow(3)
        with connect_sse(client, "POST", f"/v1/sessions/{session}/generate", json=body) as events:
            stream = events.iter_sse()
            received = [next(stream).json() for _ in range(3)]
        # the connection is closed: whatever the server decodes next is never sent
        compute.allow(100)
        info = until_saved(client, session)
        assert 3 <= info["steps"] < 50, info
        # 100 permits were there to take: decoding stopped within a few steps of the end
        assert compute.steps <= info["steps"] + 3, (compute.steps, info)
        # the saved state is the state after exactly `steps` tokens: a twin session
        # generating that many tokens unstreamed (then the same step) is in the same state
        twin = client.post("/v1/sessions", json={"model": "counter", "source": [1, 2]}).json()
        answer = client.post(
            f"/v1/sessions/{twin['session_id']}/generate", json={"max_steps": info["steps"]}
        ).json()
        assert answer["outputs"][:3] == [event["token"] for event in received]
        client.post(f"/v1/sessions/{twin['session_id']}/step", json={"inputs": [0]})
        mine = client.get(f"/v1/sessions/{session}", params={"include_state": True}).json()
        theirs = client.get(
            f"/v1/sessions/{twin['session_id']}", params={"include_state": True}
        ).json()
        assert mine["steps"] == theirs["steps"] and mine["state"] == theirs["state"]


def until_saved(client: httpx.Client, session: str) -> dict[str, int]:
    """The session's steps once the stream's save is done: a step waits for the lock the
    stream holds until then (it adds one step, which the twin session repeats)."""
    step = client.post(f"/v1/sessions/{session}/step", json={"inputs": [0]})
    assert step.status_code == 200, step.text
    return {"steps": int(step.json()["steps"]) - 1}
