"""A stored session its model cannot use answers 410 naming the session, is left as
it is (DELETE removes it), and never reaches a batch shared with other sessions."""

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.sessions.memory import MemorySessionStore
from tests import fakes
from tests.unit.test_api_fakes import error, new_session

pytestmark = pytest.mark.unit


@pytest.fixture
def served() -> Iterator[tuple[TestClient, MemorySessionStore]]:
    store = MemorySessionStore(60, 100)
    app = create_app(Settings(), registry=fakes.registry(), store=store)
    with TestClient(app) as client:
        yield client, store


@pytest.mark.parametrize(
    "damage",
    [
        {"states": (np.zeros(3, np.float32),)},  # one tensor missing
        {"states": (np.zeros(4, np.float32), np.zeros((2, 2), np.float32))},  # wrong shape
        {"next_token": 99},  # outside the model's 8 token ids
    ],
)
def test_a_record_its_model_cannot_use_is_410(
    served: tuple[TestClient, MemorySessionStore], damage: dict[str, object]
) -> None:
    client, store = served
    healthy = new_session(client, model="counter", source=[1, 2])
    sid = new_session(client, model="counter", source=[1, 2])
    store._sessions[sid] = damaged = replace(store._sessions[sid], **damage)  # type: ignore[arg-type]
    for method, path, body in [
        ("GET", "", None),
        ("POST", "/step", {"inputs": [1]}),
        ("POST", "/generate", {}),
        ("PUT", "/state", {"state": [[0, 0, 0], [[0, 0], [0, 0]]]}),
        ("POST", "/reset", None),
    ]:
        r = client.request(method, f"/v1/sessions/{sid}{path}", json=body)
        msg = error(r, 410, "session_id")
        assert r.json()["error"]["code"] == "session_corrupt"
        assert sid in msg and "delete it and create a new session" in msg
    assert store._sessions[sid].states is damaged.states  # left as it was
    assert client.post(f"/v1/sessions/{healthy}/generate", json={}).status_code == 200
    assert client.delete(f"/v1/sessions/{sid}").status_code == 204
    error(client.get(f"/v1/sessions/{sid}"), 404, "session_id")


def test_a_session_of_a_model_no_longer_served_is_410_naming_it(
    served: tuple[TestClient, MemorySessionStore],
) -> None:
    client, store = served
    sid = new_session(client, model="counter", version=1)
    store._sessions[sid] = replace(store._sessions[sid], version=7)
    msg = error(client.post(f"/v1/sessions/{sid}/generate", json={}), 410, "session_id")
    assert "model 'counter' version 7, which this server no longer serves" in msg
