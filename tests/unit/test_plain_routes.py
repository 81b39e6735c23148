"""The hot routes served by Starlette alone (service/api/plain.py) answer exactly as the
FastAPI routes behind them: the same statuses, bodies and headers, errors included."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.api.plain import PlainRoute
from service.app import create_app
from service.config import Settings
from service.sessions.memory import MemorySessionStore
from tests import fakes

pytestmark = pytest.mark.unit

VARYING = {"x-request-id", "date", "content-length"}  # content-length: ids differ in length


def app(plain: bool) -> FastAPI:
    made = create_app(Settings(), registry=fakes.registry(), store=MemorySessionStore(60, 100))
    if not plain:
        made.router.routes[:] = [r for r in made.router.routes if not isinstance(r, PlainRoute)]
    return made


def script(client: TestClient) -> list[tuple[int, Any, dict[str, str]]]:
    """Requests through every plain route: answers, errors, a wrong method."""
    out = []

    def seen(r: Any) -> None:
        try:
            body = r.json()
        except ValueError:
            body = r.text
        if isinstance(body, dict):
            for varying in ("session_id", "created_at", "expires_at"):
                body.pop(varying, None)
        headers = {k: v for k, v in r.headers.items() if k not in VARYING}
        out.append((r.status_code, body, headers))

    seen(client.post("/v1/models/counter/predict", json={"inputs": [[1, 2]]}))
    seen(client.post("/v1/models/counter/versions/1/predict", json={"inputs": [[1, 2]]}))
    seen(client.post("/predict", json={"model": "words", "inputs": [["a"]]}))
    seen(client.post("/v1/models/nosuch/predict", json={"inputs": [[1]]}))
    seen(client.post("/v1/models/counter/predict", content=b"{nope"))
    seen(client.post("/v1/models/counter/predict", json={"inputs": [[1]], "model": "x"}))
    seen(client.get("/v1/models/counter/predict"))
    r = client.post("/v1/sessions", json={"model": "stepper"})
    seen(r)
    sid = r.json()["session_id"]
    seen(client.post(f"/v1/sessions/{sid}/step", json={"inputs": [1, 2]}))
    seen(client.post(f"/v1/sessions/{sid}/step", json={"inputs": "x"}))
    seen(client.post(f"/v1/sessions/{sid}/reset"))
    seen(client.get(f"/v1/sessions/{sid}"))
    seen(client.put(f"/v1/sessions/{sid}/step"))
    seen(client.delete(f"/v1/sessions/{sid}"))
    seen(client.post("/v1/sessions/no-such-session/step", json={"inputs": [1]}))
    return out


def test_plain_routes_answer_as_the_fastapi_routes() -> None:
    with TestClient(app(plain=True)) as fast, TestClient(app(plain=False)) as slow:
        assert script(fast) == script(slow)


def test_which_routes_are_plain() -> None:
    made = app(plain=True)
    plain = {
        (r.path, *sorted(r.methods or ())) for r in made.router.routes if isinstance(r, PlainRoute)
    }
    assert plain >= {
        ("/predict", "POST"),
        ("/v1/models/{name}/predict", "POST"),
        ("/v1/sessions/{session_id}/step", "POST"),
        ("/v1/sessions/{session_id}/generate", "POST"),
        ("/v1/sessions", "POST"),
    }
    # a route with a query parameter stays FastAPI's
    assert ("/v1/sessions/{session_id}", "GET") not in plain
    schema = made.openapi()
    assert "/v1/sessions/{session_id}/step" in schema["paths"]  # still documented
