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


@pytest.mark.parametrize("model", ["dates", "dates-transformer"])
def test_dates_exact_match_on_10000_fresh_dates(http: Client, model: str) -> None:
    """The third shipped model (and the fourth, the same problem with a Transformer
    decoded with a key/value cache): text in, text out. Fresh = none of the 50,000
    training texts (seed 1), drawn with a seed training never used."""
    from service.training.date_text import sample_dates
    from service.training.dates import fresh_pairs

    seen = {text for text, _ in sample_dates(50_000, 1)}
    pairs = fresh_pairs(10_000, 20261121, seen)
    correct = 0
    for start in range(0, len(pairs), 256):
        batch = pairs[start : start + 256]
        r = http.post(f"/v1/models/{model}/predict", json={"inputs": [t for t, _ in batch]})
        assert r.status_code == 200, r.text
        correct += sum(got == iso for got, (_, iso) in zip(r.json()["outputs"], batch, strict=True))
    accuracy = correct / len(pairs)
    print(f"{model} exact-match accuracy on {len(pairs)} fresh dates: {accuracy:.4%}")
    assert accuracy >= 0.995


def test_dates_examples_from_the_readme(http: Client) -> None:
    examples = ["21 Nov 2026", "saturday, november 21, 2026", "11/21/26", "2026.11.21"]
    r = http.post("/v1/models/dates/predict", json={"inputs": examples})
    assert r.json()["outputs"] == ["2026-11-21"] * 4
    sid = http.post("/v1/sessions", json={"model": "dates", "source": "21 Nov 2026"}).json()
    r = http.post(f"/v1/sessions/{sid['session_id']}/generate", json={})
    assert r.json()["text"] == "2026-11-21" and r.json()["outputs"][-1] == "\n"
