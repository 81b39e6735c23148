"""API keys, ownership, browser checks and what the log shows, on a real server process."""

import httpx
import pytest

from service.sessions.store import log_id
from tests.harness import Server
from tests.harness.http import HTTP
from tests.integration.conftest import API_KEYS

pytestmark = pytest.mark.integration

ALICE, BOB = API_KEYS["alice"], API_KEYS["bob"]


@pytest.fixture(scope="module")
def keyed(keyed_server: tuple[str, Server]) -> tuple[str, Server]:
    """The session's server with keys (info logs, access log on)."""
    return keyed_server


def test_keys_ownership_and_a_log_without_secrets(keyed: tuple[str, Server]) -> None:
    url, server = keyed
    alice = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ALICE}"}, timeout=60)
    bob = httpx.Client(base_url=url, headers={"X-API-Key": BOB}, timeout=60)
    anonymous = httpx.Client(base_url=url, timeout=60)
    with alice, bob, anonymous:
        r = anonymous.post("/predict", json={"inputs": [[20, 36, 40, 10, 34, 28]]})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/readyz").status_code == 200
        assert alice.post("/predict", json={"inputs": [[20, 36, 40, 10, 34, 28]]}).json()[
            "outputs"
        ] == [[40, 36, 20]]
        sid = alice.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]
        assert alice.post(f"/v1/sessions/{sid}/step", json={"inputs": [3]}).status_code == 200
        assert bob.get(f"/v1/sessions/{sid}").status_code == 404
        assert bob.post(f"/v1/sessions/{sid}/step", json={"inputs": [3]}).status_code == 404
        assert bob.delete(f"/v1/sessions/{sid}").status_code == 404
        assert alice.get(f"/v1/sessions/{sid}").json()["steps"] == 1
        cross_site = anonymous.post(
            "/v1/sessions",
            content=b'{"model": "memory"}',
            headers={
                "Content-Type": "text/plain",
                "Origin": "http://evil.example",
                "X-API-Key": BOB,
            },
        )
        assert cross_site.status_code == 403
        assert alice.delete(f"/v1/sessions/{sid}").status_code == 204
    log = server.output()
    assert f"/v1/sessions/{log_id(sid)}/step" in log  # the access log has the request
    assert sid not in log and ALICE not in log and BOB not in log


def test_v2_sequences_belong_to_the_key_that_started_them(keyed: tuple[str, Server]) -> None:
    url, _ = keyed

    def infer(key: str, value: int, **parameters: object) -> httpx.Response:
        body = {
            "inputs": [{"name": "tokens", "shape": [1, 1], "datatype": "INT64", "data": [value]}],
            "parameters": {"sequence_id": 5, **parameters},
        }
        headers = {"Authorization": f"Bearer {key}"}
        return HTTP.post(f"{url}/v2/models/memory/infer", json=body, headers=headers, timeout=60)

    assert HTTP.post(f"{url}/v2/models/memory/infer", json={"inputs": []}).status_code == 401
    assert infer(ALICE, 3, sequence_start=True).json()["outputs"][0]["data"] == [0]
    # Bob's sequence 5 is not Alice's: without START it does not exist for him
    refused = infer(BOB, 0)
    assert refused.status_code == 400 and "sequence_start" in refused.json()["error"]
    # and starting his own leaves hers alone
    assert infer(BOB, 4, sequence_start=True).json()["outputs"][0]["data"] == [0]
    assert infer(ALICE, 0).json()["outputs"][0]["data"] == [1]
    assert infer(BOB, 0, sequence_end=True).json()["outputs"][0]["data"] == [1]
    assert infer(ALICE, 1).json()["outputs"][0]["data"] == [2]
    assert infer(ALICE, 2, sequence_end=True).json()["outputs"][0]["data"] == [3]
