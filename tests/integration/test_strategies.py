"""Beam search and sampling on the shipped models: the compiled graphs against the numpy
references, beam search against brute force, and the promises of the HTTP answers
(width 1 is greedy, seeded samples are reproducible whatever they are batched with,
n best lists, sessions continue from the best hypothesis)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from httpx import Client

from service.config import Settings
from service.dataplane.tokens import source_ids
from service.inference.compiled.keras_model import KerasCompute
from service.inference.model.interface import Beams, Decoded, Decoding, LoadedModel, Sampling
from service.inference.reference.beam import log_probs
from service.inference.reference.compute import ReferenceCompute
from service.inference.reference.sampling import row_seeds
from service.inference.serving.decoding import sampling
from service.training.date_text import sample_dates
from tests.floats import RTOL, assert_close

pytestmark = pytest.mark.integration

SETTINGS = Settings()
DATE_TEXTS = [text for text, _ in sample_dates(12, 31337)] + ["21 Nov 2026", "11/21/26"]


@pytest.fixture(scope="module")
def models(shipped_models: dict[str, LoadedModel]) -> dict[str, LoadedModel]:
    return shipped_models


def compute(models: dict[str, LoadedModel], name: str) -> KerasCompute:
    engine = models[name].compute
    assert isinstance(engine, KerasCompute)
    return engine


def sources_of(models: dict[str, LoadedModel], name: str, count: int, seed: int) -> np.ndarray:
    """`count` same-length sources for a seq2seq model."""
    if name == "reverse":
        return np.random.default_rng(seed).integers(1, 51, size=(count, 6)).astype(np.int32)
    manifest = models[name].spec.manifest
    texts = [t for t, _ in sample_dates(count, seed)]
    return np.asarray([source_ids(manifest, t, "source", SETTINGS) for t in texts], np.int32)


# ---- compiled graphs against the numpy references -----------------------------------


def assert_same_beams(fast: Beams, slow: Beams, states: bool) -> None:
    np.testing.assert_array_equal(fast.lengths, slow.lengths)
    assert fast.steps_run == slow.steps_run
    batch, width = slow.lengths.shape
    for i in range(batch):
        for j in range(width):
            n = int(slow.lengths[i, j])
            what = f"row {i} hypothesis {j}"
            np.testing.assert_array_equal(fast.tokens[i, j, :n], slow.tokens[i, j, :n], what)
            assert_close(fast.step_scores[i, j, :n], slow.step_scores[i, j, :n], what)
    for name in ("scores", "ranking"):
        a, b = getattr(fast, name), getattr(slow, name)
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b), name)
        assert_close(a[np.isfinite(b)], b[np.isfinite(b)], name)
    if states:
        assert len(fast.states) == len(slow.states) > 0
        for a, b in zip(fast.states, slow.states, strict=True):
            assert_close(a, b, "best states")


def limits_and_alphas(batch: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    limits = np.asarray([steps if i % 3 else 1 + i % steps for i in range(batch)], np.int32)
    alphas = np.asarray([[0.0, 0.6][i % 2] for i in range(batch)], np.float32)
    return limits, alphas


@pytest.mark.parametrize("name", ["reverse", "dates"])
@pytest.mark.parametrize("width", [1, 2, 5, 16])
def test_compiled_beam_decode_equals_the_reference(
    models: dict[str, LoadedModel], name: str, width: int
) -> None:
    engine = compute(models, name)
    sources = sources_of(models, name, 10, seed=width)
    limits, alphas = limits_and_alphas(10, models[name].spec.manifest.max_steps)
    fast = engine.beam_decode(sources, limits, width, alphas)
    slow = ReferenceCompute.beam_decode(engine, sources, limits, width, alphas)
    assert_same_beams(fast, slow, states=False)
    # from the encoded states, beam also returns the best hypothesis's state
    start = np.full(len(sources), models[name].spec.manifest.start_id, np.int32)
    states = engine.encode(sources)
    fast = engine.beam(start, states, limits, width, alphas)
    slow = ReferenceCompute.beam(engine, start, states, limits, width, alphas)
    assert_same_beams(fast, slow, states=True)


@pytest.mark.parametrize("width", [1, 5, 25])
def test_compiled_beam_on_a_step_model_equals_the_reference(
    models: dict[str, LoadedModel], width: int
) -> None:
    engine = compute(models, "memory")
    rng = np.random.default_rng(width)
    batch = 9
    states = [rng.normal(size=(batch, 20)).astype(np.float32) for _ in range(2)]
    states[0][0] = states[1][0] = 0  # one row from the zero state
    tokens = rng.integers(0, 5, size=batch).astype(np.int32)
    limits, alphas = limits_and_alphas(batch, 6)
    fast = engine.beam(tokens, states, limits, width, alphas)
    slow = ReferenceCompute.beam(engine, tokens, states, limits, width, alphas)
    assert_same_beams(fast, slow, states=True)


def mixed_sampling(batch: int, seed: int) -> Sampling:
    """Every row its own temperature (0 among them), top_k, top_p, stream and offset."""

    def cycle(values: Sequence[float]) -> list[float]:
        return [values[i % len(values)] for i in range(batch)]

    return Sampling(
        temperature=np.asarray(cycle([0.0, 0.5, 1.0, 1.7, 3.0]), np.float32),
        top_k=np.asarray(cycle([0, 0, 3, 1, 0, 5, 2]), np.int32),
        top_p=np.asarray(cycle([1.0, 0.9, 1.0, 0.5, 0.97, 1.0]), np.float32),
        seeds=row_seeds(seed, batch),
        offsets=np.asarray(cycle([0, 3, 11, 0, 100]), np.int32),
    )


def assert_same_decoded(fast: Decoded, slow: Decoded, states: bool) -> None:
    np.testing.assert_array_equal(fast.lengths, slow.lengths)
    assert fast.scores is not None and slow.scores is not None
    for i, n in enumerate(slow.lengths.tolist()):
        np.testing.assert_array_equal(fast.tokens[i, :n], slow.tokens[i, :n], f"row {i}")
        assert_close(fast.scores[i, :n], slow.scores[i, :n], f"row {i}")
        if slow.probabilities is not None:
            assert fast.probabilities is not None
            assert_close(fast.probabilities[i, :n], slow.probabilities[i, :n], f"row {i}")
    if states:
        for a, b in zip(fast.states, slow.states, strict=True):
            assert_close(a, b, "final states")


@pytest.mark.parametrize("name", ["reverse", "dates"])
@pytest.mark.parametrize("probs", [False, True])
def test_compiled_sampled_decode_equals_the_reference(
    models: dict[str, LoadedModel], name: str, probs: bool
) -> None:
    engine = compute(models, name)
    batch = 30
    sources = sources_of(models, name, batch, seed=7)
    limits = np.asarray([1 + i % models[name].spec.manifest.max_steps for i in range(batch)])
    chosen = mixed_sampling(batch, seed=2026)
    fast = engine.decode(sources, limits, probs, chosen)
    slow = ReferenceCompute.decode(engine, sources, limits, probs, chosen)
    assert_same_decoded(fast, slow, states=False)
    greedy = engine.decode(sources, limits, False)
    for i in np.flatnonzero(chosen.temperature == 0):  # temperature 0: the argmax
        n = greedy.lengths[i]
        assert fast.lengths[i] == n
        np.testing.assert_array_equal(fast.tokens[i, :n], greedy.tokens[i, :n])
    # built from the wire's per-row decodings, as the engine builds it
    rows = [
        Decoding("sample", temperature=t, top_k=k, top_p=p, seed=int(s))
        for t, k, p, s in zip(
            [1.0, 2.0, 0.0, 1.2], [0, 0, 0, 4], [1.0, 0.8, 1.0, 0.9], row_seeds(9, 4), strict=True
        )
    ]
    fast = engine.decode(sources[:4], limits[:4], probs, sampling(rows))
    slow = ReferenceCompute.decode(engine, sources[:4], limits[:4], probs, sampling(rows))
    assert_same_decoded(fast, slow, states=False)


def test_compiled_sampled_generate_equals_the_reference(models: dict[str, LoadedModel]) -> None:
    for name in ("memory", "dates"):
        engine = compute(models, name)
        batch = 20
        if name == "memory":
            rng = np.random.default_rng(4)
            states = [rng.normal(size=(batch, 20)).astype(np.float32) for _ in range(2)]
            tokens = rng.integers(0, 5, size=batch).astype(np.int32)
        else:
            states = engine.encode(sources_of(models, name, batch, seed=8))
            tokens = np.zeros(batch, np.int32)
        limits = np.asarray([1 + i % 9 for i in range(batch)], np.int32)
        chosen = mixed_sampling(batch, seed=77)
        fast = engine.generate(tokens, states, limits, True, chosen)
        slow = ReferenceCompute.generate(engine, tokens, states, limits, True, chosen)
        assert_same_decoded(fast, slow, states=True)


def test_sampling_draws_differ_from_greedy_where_it_should(models: dict[str, LoadedModel]) -> None:
    """Not a vacuous comparison: hot rows do leave the argmax."""
    engine = compute(models, "dates")
    batch = 40
    sources = sources_of(models, "dates", batch, seed=9)
    limits = np.full(batch, 11, np.int32)
    hot = Sampling(
        np.full(batch, 3.0, np.float32),
        np.zeros(batch, np.int32),
        np.ones(batch, np.float32),
        row_seeds(1, batch),
        np.zeros(batch, np.int32),
    )
    sampled = engine.decode(sources, limits, False, hot)
    greedy = engine.decode(sources, limits, False)
    differs = [
        sampled.tokens[i, : sampled.lengths[i]].tolist()
        != greedy.tokens[i, : greedy.lengths[i]].tolist()
        for i in range(batch)
    ]
    assert sum(differs) >= batch // 4


# ---- beam search against brute force, through the compiled graph ----------------------


@dataclass
class Hyp:
    tokens: list[int]
    steps: list[float]
    state: list[np.ndarray]

    @property
    def score(self) -> float:
        return float(np.sum(np.asarray(self.steps, np.float64)))

    def rank(self, alpha: float) -> float:
        return self.score / float(((5 + len(self.tokens)) / 6) ** alpha)


def every_sequence(
    engine: KerasCompute, token: int, states: Sequence[np.ndarray], steps: int
) -> list[Hyp]:
    """Every output of up to `steps` tokens from (token, states), by the model's own
    step function: a sequence ends at the end token or at `steps` tokens. Each level
    is one batched step over the live prefixes."""
    end = engine.spec.manifest.end_id
    found: list[Hyp] = []
    live = [Hyp([], [], [np.asarray(s) for s in states])]
    fed = [token]
    for t in range(steps):
        batch = [np.stack([h.state[k] for h in live]) for k in range(len(states))]
        probs, new = engine.step(np.asarray(fed, np.int32), batch)
        logp = log_probs(probs)
        grown, fed = [], []
        for row, prefix in enumerate(live):
            for v, lp in enumerate(logp[row].tolist()):
                hyp = Hyp([*prefix.tokens, v], [*prefix.steps, lp], [s[row] for s in new])
                if v == end or t + 1 == steps:
                    found.append(hyp)
                else:
                    grown.append(hyp)
                    fed.append(v)
        live = grown
    return found


def assert_true_best(beams: Beams, row: int, everything: list[Hyp], alpha: float) -> None:
    """Row `row` holds the true best min(width, all) sequences, best first. Where the
    true ranks are tied within float32 noise, the tied sequences may come in any order
    (and at the cut, either may be in)."""
    want = sorted(everything, key=lambda h: -h.rank(alpha))
    width = beams.lengths.shape[1]
    n = min(width, len(want))
    got = [beams.tokens[row, j, : beams.lengths[row, j]].tolist() for j in range(width)]
    assert all(len(g) > 0 for g in got[:n]), f"row {row}: {n} hypotheses expected"
    assert all(len(g) == 0 for g in got[n:]), f"row {row}: only {n} sequences exist"
    assert len({tuple(g) for g in got[:n]}) == n, f"row {row}: duplicates {got[:n]}"
    ranks = np.asarray([h.rank(alpha) for h in want])
    by_tokens = {tuple(h.tokens): h for h in want}
    j = 0
    while j < n:  # groups of tied ranks
        end = j + 1
        while end < len(want) and abs(ranks[end] - ranks[j]) <= 10 * RTOL * (1 + abs(ranks[j])):
            end += 1
        group = {tuple(h.tokens) for h in want[j:end]}
        for k in range(j, min(end, n)):
            assert tuple(got[k]) in group, f"row {row} position {k}: {got[k]} not among {group}"
        j = end
    for k in range(n):
        hyp = by_tokens[tuple(got[k])]
        assert_close(beams.scores[row, k], hyp.score, f"row {row} position {k}")
        assert_close(beams.ranking[row, k], hyp.rank(alpha), f"row {row} position {k}")
        assert_close(beams.step_scores[row, k, : len(hyp.tokens)], hyp.steps)
    if beams.states:
        best = by_tokens[tuple(got[0])]
        for s, want_state in zip(beams.states, best.state, strict=True):
            assert_close(s[row], want_state, f"row {row}: the best hypothesis's state")


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_memory_beam_finds_the_true_best_of_all_125_sequences(
    models: dict[str, LoadedModel], alpha: float
) -> None:
    engine = compute(models, "memory")
    zero = models["memory"].spec.zero_states(5)
    tokens = np.arange(5, dtype=np.int32)  # each first input from the zero state
    steps, width = 3, 25  # 5 x 5 live prefixes before the last step
    beams = engine.beam(tokens, zero, np.full(5, steps), width, np.full(5, alpha, np.float32))
    for row in range(5):
        everything = every_sequence(engine, row, [s[row] for s in zero], steps)
        assert len(everything) == 125
        assert_true_best(beams, row, everything, alpha)


@pytest.mark.parametrize(
    ("name", "steps", "width"),
    [
        ("reverse", 2, 51),  # 51 live prefixes after step 1; 2601 sequences
        ("dates", 2, 12),  # the end token, or 12 x 13: 157 sequences
        ("dates", 2, 16),
        ("dates", 1, 16),  # 13 sequences: fewer than the width
    ],
)
def test_seq2seq_beam_finds_the_true_best_sequences(
    models: dict[str, LoadedModel], name: str, steps: int, width: int
) -> None:
    engine = compute(models, name)
    sources = sources_of(models, name, 2, seed=steps + width)
    start = models[name].spec.manifest.start_id
    assert start is not None
    states = engine.encode(sources)
    alphas = np.asarray([0.0, 0.6], np.float32)
    tokens = np.full(2, start, np.int32)
    limits = np.full(2, steps, np.int32)
    beams = engine.beam(tokens, states, limits, width, alphas)
    decoded = engine.beam_decode(sources, limits, width, alphas)
    for row in range(2):
        everything = every_sequence(engine, start, [s[row] for s in states], steps)
        assert_true_best(beams, row, everything, float(alphas[row]))
        assert_true_best(decoded, row, everything, float(alphas[row]))


# ---- over HTTP ------------------------------------------------------------------------


def predict(http: Client, model: str, **body: Any) -> dict[str, Any]:
    r = http.post(f"/v1/models/{model}/predict", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def reverse_inputs(count: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(x) for x in row] for row in rng.integers(1, 51, size=(count, 6))]


INPUTS: dict[str, list[Any]] = {"reverse": reverse_inputs(16, 5), "dates": DATE_TEXTS}


@pytest.mark.parametrize("model", ["reverse", "dates"])
def test_beam_width_one_is_greedy(http: Client, model: str) -> None:
    inputs = INPUTS[model]
    greedy = predict(http, model, inputs=inputs, return_scores=True)
    beam = predict(http, model, inputs=inputs, strategy="beam", beam_width=1, return_scores=True)
    assert beam["outputs"] == greedy["outputs"]
    assert_close(beam["scores"], greedy["scores"])
    for a, b in zip(beam["step_scores"], greedy["step_scores"], strict=True):
        assert_close(a[0], b[0])
    assert_close([s[0] for s in greedy["scores"]], [sum(s[0]) for s in greedy["step_scores"]])


@pytest.mark.parametrize("model", ["reverse", "dates"])
def test_sampling_at_a_tiny_temperature_is_greedy(http: Client, model: str) -> None:
    inputs = INPUTS[model]
    greedy = predict(http, model, inputs=inputs)
    for seed in (0, 1, 12345):
        body = {"strategy": "sample", "temperature": 1e-4, "seed": seed}
        cold = predict(http, model, inputs=inputs, **body)
        assert cold["outputs"] == greedy["outputs"] and cold["seed"] == seed


HOT = {"strategy": "sample", "temperature": 2.5, "top_p": 0.99, "return_scores": True}


def request_alone_and_among_others(
    server_url: str, requests: list[tuple[str, dict[str, Any]]], copies: int = 3
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Each request answered alone, one after another; then every request `copies` times
    at once, shuffled, from as many threads (so that the server batches them together)."""
    with Client(base_url=server_url, timeout=120) as http:
        alone = [predict(http, model, **body) for model, body in requests]
    jobs = [i for i in range(len(requests)) for _ in range(copies)]
    random.Random(3).shuffle(jobs)

    def send(i: int) -> tuple[int, dict[str, Any]]:
        with Client(base_url=server_url, timeout=120) as http:
            model, body = requests[i]
            return i, predict(http, model, **body)

    together: list[list[dict[str, Any]]] = [[] for _ in requests]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for i, answer in pool.map(send, jobs):
            together[i].append(answer)
    return alone, together


def assert_same_answer(got: dict[str, Any], want: dict[str, Any], what: str) -> None:
    """Tokens exactly, scores within the float tolerance."""
    for key in ("outputs", "sequences", "seed"):
        assert got.get(key) == want.get(key), f"{what}: {key}"
    for key in ("scores", "step_scores", "probabilities"):
        assert (got.get(key) is None) == (want.get(key) is None), f"{what}: {key}"
        if want.get(key) is not None:
            for a, b in zip(got[key], want[key], strict=True):
                for x, y in zip(a, b, strict=True):
                    assert_close(x, y, f"{what}: {key}")


def test_a_seeded_sample_depends_on_nothing_but_its_request(server_url: str, http: Client) -> None:
    inputs = DATE_TEXTS[:10]
    body = {**HOT, "seed": 4242, "inputs": inputs}
    first = predict(http, "dates", **body)
    assert first["seed"] == 4242
    assert_same_answer(predict(http, "dates", **body), first, "the same request again")
    greedy = predict(http, "dates", inputs=inputs)
    assert first["outputs"] != greedy["outputs"], "too cold to tell streams apart"
    other_seed = predict(http, "dates", **{**body, "seed": 4243})
    assert other_seed["outputs"] != first["outputs"]
    # row i draws from stream i of the seed, whatever the other rows are
    for count in (1, 3, 7):
        head = predict(http, "dates", **{**body, "inputs": inputs[:count]})
        assert head["outputs"] == first["outputs"][:count], count
        assert_close(head["scores"], first["scores"][:count])
    swapped = [*inputs[:2], "January 1, 1999", *inputs[3:]]
    changed = predict(http, "dates", **{**body, "inputs": swapped})
    keep = [i for i in range(len(inputs)) if i != 2]
    assert [changed["outputs"][i] for i in keep] == [first["outputs"][i] for i in keep]
    # and whatever other requests share its batch
    others: list[tuple[str, dict[str, Any]]] = [
        ("dates", {**HOT, "seed": s, "inputs": DATE_TEXTS[s % 5 : s % 5 + 3]}) for s in range(6)
    ]
    others += [
        ("dates", {"inputs": DATE_TEXTS[3:9]}),
        ("reverse", {**HOT, "seed": 6, "inputs": [[1] * 6]}),
    ]
    alone, together = request_alone_and_among_others(server_url, [("dates", body), *others])
    assert_same_answer(alone[0], first, "alone")
    for i, answers in enumerate(together):
        for answer in answers:
            assert_same_answer(answer, alone[i], f"request {i} among others")


@pytest.mark.parametrize("model", ["reverse", "dates"])
def test_n_best_are_distinct_and_sorted_with_their_step_scores(http: Client, model: str) -> None:
    # dates as tokens, not text: two sequences may differ only by the end token
    inputs = INPUTS[model][:6] if model == "reverse" else [list(t) for t in DATE_TEXTS[:6]]
    for width, n in ((5, 5), (8, 3)):
        body = {"strategy": "beam", "beam_width": width, "num_return_sequences": n}
        answer = predict(http, model, inputs=inputs, return_scores=True, **body)
        assert answer["outputs"] == [s[0] for s in answer["sequences"]]
        for row, scores, steps in zip(
            answer["sequences"], answer["scores"], answer["step_scores"], strict=True
        ):
            assert len(row) == n and len({tuple(s) for s in row}) == n, row
            assert scores == sorted(scores, reverse=True), scores
            assert [len(s) for s in steps] == [len(s) for s in row]
            assert_close(scores, [sum(s) for s in steps])
        # without return_scores: the scores still, no step_scores
        plain = predict(http, model, inputs=inputs, **body)
        assert plain["sequences"] == answer["sequences"] and "step_scores" not in plain
        assert_close(plain["scores"], answer["scores"])


def test_n_best_beyond_the_possible_outputs_answers_each_once(http: Client) -> None:
    """dates' first step has 13 possible tokens: a beam of 16 can find 13 sequences."""
    body = {
        "strategy": "beam",
        "beam_width": 16,
        "num_return_sequences": 16,
        "max_steps": 1,
        "return_scores": True,
    }
    answer = predict(http, "dates", inputs=[list(DATE_TEXTS[0])], **body)
    sequences, scores = answer["sequences"][0], answer["scores"][0]
    assert len(sequences) == len({tuple(s) for s in sequences}) == 13, sequences
    assert all(isinstance(s, float) for s in scores), scores
    assert scores == sorted(scores, reverse=True)


def test_beam_on_dates_is_at_least_as_good_as_greedy(http: Client) -> None:
    pairs = sample_dates(100, 777)
    texts = [t for t, _ in pairs]
    greedy = predict(http, "dates", inputs=texts, return_scores=True)
    beam = predict(http, "dates", inputs=texts, strategy="beam", return_scores=True)
    right = [
        [got == iso for got, (_, iso) in zip(a["outputs"], pairs, strict=True)]
        for a in (greedy, beam)
    ]
    print(f"dates exact match on 100: greedy {sum(right[0])}, beam {sum(right[1])}")
    assert sum(right[1]) >= sum(right[0])
    greedy_scores = np.asarray([s[0] for s in greedy["scores"]])
    beam_scores = np.asarray([s[0] for s in beam["scores"]])
    assert beam_scores.mean() >= greedy_scores.mean() - 1e-5
    assert (beam_scores >= greedy_scores - 1e-4).mean() >= 0.95


# ---- sessions ---------------------------------------------------------------------------


def create(http: Client, **body: Any) -> str:
    r = http.post("/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


def post(http: Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = http.post(path, json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def saved(http: Client, sid: str) -> dict[str, Any]:
    r = http.get(f"/v1/sessions/{sid}", params={"include_state": "true"})
    assert r.status_code == 200, r.text
    info: dict[str, Any] = r.json()
    return info


def assert_same_session(http: Client, a: str, b: str) -> None:
    first, second = saved(http, a), saved(http, b)
    assert first["steps"] == second["steps"]
    for x, y in zip(first["state"], second["state"], strict=True):
        assert_close(x, y, "session state")


@pytest.mark.parametrize(
    ("create_body", "history"),
    [
        ({"model": "dates", "source": "Saturday, 21 Nov 2026"}, []),
        ({"model": "dates", "source": "3/7/51"}, []),
        ({"model": "memory"}, [4, 0]),
    ],
)
def test_beam_generate_leaves_the_session_at_its_best_hypothesis(
    http: Client, create_body: dict[str, Any], history: list[int]
) -> None:
    beamed = create(http, **create_body)
    forced = create(http, **create_body)
    start: Any = "\t"  # a seq2seq session feeds the start token first
    for sid in (beamed, forced):
        if history:  # a step session feeds its last output
            start = post(http, f"/v1/sessions/{sid}/step", {"inputs": history})["outputs"][-1]
    steps = 11 if create_body["model"] == "dates" else 4
    body = {"strategy": "beam", "beam_width": 5, "num_return_sequences": 3, "max_steps": steps}
    beam = post(http, f"/v1/sessions/{beamed}/generate", {**body, "return_scores": True})
    best = beam["outputs"]
    assert beam["sequences"][0] == best and len(beam["sequences"]) == 3
    assert beam["steps"] == len(history) + len(best)
    assert_close(beam["scores"][0], sum(beam["step_scores"][0]))
    # the same tokens fed by step: what generate fed first, then the best but its last
    step = post(http, f"/v1/sessions/{forced}/step", {"inputs": [start, *best[:-1]]})
    assert step["outputs"][-1] == best[-1], "the best's last token is not the argmax"
    assert_same_session(http, beamed, forced)
    # both go on the same way
    more = [post(http, f"/v1/sessions/{s}/generate", {"max_steps": 3}) for s in (beamed, forced)]
    assert more[0]["outputs"] == more[1]["outputs"]
    assert_same_session(http, beamed, forced)


def test_a_seeded_session_sample_is_reproducible(http: Client) -> None:
    answers = []
    for _ in range(2):
        sid = create(http, model="memory")
        post(http, f"/v1/sessions/{sid}/step", {"inputs": [3, 0]})
        pieces = [
            post(
                http,
                f"/v1/sessions/{sid}/generate",
                {**HOT, "temperature": 3.0, "seed": seed, "max_steps": 4},
            )
            for seed in (99, 100, 99)
        ]
        answers.append((pieces, saved(http, sid)))
    (first, state_1), (second, state_2) = answers
    for a, b in zip(first, second, strict=True):
        assert a["outputs"] == b["outputs"] and a["seed"] == b["seed"]
        assert_close(a["step_scores"], b["step_scores"])
    for x, y in zip(state_1["state"], state_2["state"], strict=True):
        assert_close(x, y)
    # and a session's sample is the same sample as a batch row's from that state
    sid = create(http, model="memory")
    post(http, f"/v1/sessions/{sid}/step", {"inputs": [3, 0]})
    body = {"strategy": "sample", "temperature": 3.0, "seed": 99, "max_steps": 4}
    again = post(http, f"/v1/sessions/{sid}/generate", body)
    assert again["outputs"] == first[0]["outputs"]


# ---- batching never changes a row's result ---------------------------------------------


def test_concurrent_mixed_strategies_answer_what_each_answers_alone(server_url: str) -> None:
    reverse, dates = INPUTS["reverse"], DATE_TEXTS
    beam = {"strategy": "beam", "beam_width": 3, "num_return_sequences": 2, "return_scores": True}
    requests: list[tuple[str, dict[str, Any]]] = [
        ("reverse", {"inputs": reverse[:5], "return_scores": True}),
        ("reverse", {"inputs": reverse[5:7], "return_probabilities": True}),
        ("reverse", {"inputs": reverse[3:9], **beam}),
        ("reverse", {"inputs": reverse[:2], **beam, "beam_width": 5, "length_penalty": 0.6}),
        ("reverse", {"inputs": reverse[2:6], **HOT, "seed": 1}),
        ("reverse", {"inputs": reverse[2:4], **HOT, "seed": 2, "top_k": 3}),
        ("dates", {"inputs": dates[:4], "return_scores": True}),
        ("dates", {"inputs": dates[4:9], **beam}),
        ("dates", {"inputs": dates[1:3], **beam, "length_penalty": 1.0, "max_steps": 6}),
        ("dates", {"inputs": dates[6:12], **HOT, "seed": 3}),
        ("dates", {"inputs": dates[:3], **HOT, "seed": 4, "temperature": 0.0}),
        ("dates", {"inputs": dates[9:13], **HOT, "seed": 5, "max_steps": 5}),
    ]
    alone, together = request_alone_and_among_others(server_url, requests)
    for i, answers in enumerate(together):
        assert len(answers) == 3
        for answer in answers:
            assert_same_answer(answer, alone[i], f"request {i}: {requests[i]}")
