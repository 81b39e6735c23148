"""The acceptance bars of the shipped models, measured through HTTP."""

import numpy as np
import pytest
from httpx import Client

pytestmark = pytest.mark.integration


def test_reverse_exact_sequence_accuracy_on_10000_fresh_sources(http: Client) -> None:
    rng = np.random.default_rng(20261121)  # not the training seed
    sources = rng.integers(1, 51, size=(10_000, 6))
    correct = 0
    for start in range(0, len(sources), 256):
        batch = sources[start : start + 256]
        r = http.post("/v1/models/reverse/predict", json={"inputs": batch.tolist()})
        assert r.status_code == 200
        expected = batch[:, :3][:, ::-1]
        correct += int(np.all(np.asarray(r.json()["outputs"]) == expected, axis=1).sum())
    accuracy = correct / len(sources)
    print(f"reverse exact-sequence accuracy on {len(sources)} fresh sources: {accuracy:.4%}")
    assert accuracy >= 0.999


def test_memory_sequences_with_a_reset_between_them(http: Client) -> None:
    sid = http.post("/v1/sessions", json={"model": "memory"}).json()["session_id"]
    first = [
        http.post(f"/v1/sessions/{sid}/step", json={"inputs": [v]}).json()["outputs"][0]
        for v in (3, 0, 1, 2)
    ]
    http.post(f"/v1/sessions/{sid}/reset")
    second = [
        http.post(f"/v1/sessions/{sid}/step", json={"inputs": [v]}).json()["outputs"][0]
        for v in (4, 0, 1, 2)
    ]
    assert first == [0, 1, 2, 3]
    assert second == [0, 1, 2, 4]
