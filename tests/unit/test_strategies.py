"""Decoding strategies on numpy fakes: beam search against brute force, width 1 against
greedy, sampling's rule (seeded streams, argmax limits, distribution), and the wire rules
that place each option with its strategy (service/dataplane/strategies.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy.stats import chisquare

from service.app import create_app
from service.config import Settings
from service.inference.model.interface import Beams, Decoding, LoadedModel, ModelSpec, States
from service.inference.model.registry import Registry
from service.inference.reference import sampling as rule
from service.inference.reference.beam import log_probs
from service.inference.reference.compute import ReferenceCompute
from service.inference.serving.decoding import beam_rows, decode
from service.sessions.memory import MemorySessionStore
from tests import fakes
from tests.floats import assert_close

pytestmark = pytest.mark.unit

VOCAB = 4  # tokens 0..3; 0 is also the start token
END = 3
UNITS = 3


class TinyRNN(ReferenceCompute):
    """h' = tanh(A h + B[token]), probabilities = softmax(C h'); the encoder sums S over
    the source. float64 inside, row by row (elementwise products summed over the last
    axis), so a row's numbers do not depend on its batch: brute force and beam search
    see the very same probabilities."""

    def __init__(self, end: int | None = END, seed: int = 7, scale: float = 1.5):
        rng = np.random.default_rng(seed)
        self.a = rng.normal(size=(UNITS, UNITS))
        self.b = rng.normal(size=(VOCAB, UNITS))
        self.c = rng.normal(size=(VOCAB, UNITS)) * scale
        self.s = rng.normal(size=(VOCAB, UNITS))
        manifest = fakes.manifest(end_token=end, cardinality=VOCAB)
        self.spec = ModelSpec("tiny", 1, manifest, ((UNITS,),))

    def encode(self, sources: np.ndarray) -> States:
        return [np.tanh(self.s[sources].sum(axis=1)).astype(np.float32)]

    def step(self, tokens: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, States]:
        h = states[0].astype(np.float64)
        h = np.tanh((h[:, None, :] * self.a[None]).sum(axis=-1) + self.b[tokens])
        logits = (h[:, None, :] * self.c[None]).sum(axis=-1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32), [h.astype(np.float32)]


@dataclass
class Hyp:
    tokens: list[int]
    steps: list[float]  # each token's float32 log-probability
    state: list[np.ndarray]  # after the last token

    @property
    def score(self) -> float:
        return float(np.sum(np.asarray(self.steps, np.float64)))

    def rank(self, alpha: float) -> float:
        return self.score / float(((5 + len(self.tokens)) / 6) ** alpha)


def every_sequence(
    compute: ReferenceCompute, token: int, states: Sequence[np.ndarray], steps: int
) -> list[Hyp]:
    """Every output a decode of up to `steps` tokens can give from (token, states): a
    sequence ends at the end token or at `steps` tokens."""
    end = compute.spec.manifest.end_id
    found: list[Hyp] = []

    def grow(prefix: Hyp, fed: int, current: Sequence[np.ndarray]) -> None:
        probs, new = compute.step(np.asarray([fed], np.int32), current)
        logp = log_probs(probs)[0]
        for v, lp in enumerate(logp.tolist()):
            hyp = Hyp([*prefix.tokens, v], [*prefix.steps, lp], [s[0] for s in new])
            if v == end or len(hyp.tokens) == steps:
                found.append(hyp)
            else:
                grow(hyp, v, [s[:1] for s in new])

    grow(Hyp([], [], []), token, [np.asarray(s)[None] for s in states])
    return found


def ranked(hyps: list[Hyp], alpha: float) -> list[Hyp]:
    return sorted(hyps, key=lambda h: -h.rank(alpha))


def assert_no_near_ties(best: list[Hyp], alpha: float, count: int) -> None:
    """The fake's numbers make the true order well defined where it is compared."""
    ranks = [h.rank(alpha) for h in best[: count + 1]]
    gaps = -np.diff(ranks)
    assert gaps.min() > 1e-4, f"near tie in the brute force ranking: {gaps.min()}"


def assert_beams_are(beams: Beams, row: int, want: list[Hyp], alpha: float) -> None:
    """Row `row` of `beams` holds exactly `want` in order, then nothing."""
    width = beams.lengths.shape[1]
    for j, hyp in enumerate(want):
        n = int(beams.lengths[row, j])
        what = f"row {row} hypothesis {j}"
        assert beams.tokens[row, j, :n].tolist() == hyp.tokens, what
        assert_close(beams.scores[row, j], hyp.score, what)
        assert_close(beams.ranking[row, j], hyp.rank(alpha), what)
        assert_close(beams.step_scores[row, j, :n], hyp.steps, what)
    for j in range(len(want), width):
        assert beams.lengths[row, j] == 0, f"row {row}: hypothesis {j} does not exist"
        assert beams.scores[row, j] == -np.inf and beams.ranking[row, j] == -np.inf
    if want:
        assert_close(beams.states[0][row], want[0].state[0], f"row {row}: best state")


# ---- beam search against brute force ---------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.7])
@pytest.mark.parametrize("source", [[1, 2], [3, 3], [0, 1]])
def test_wide_enough_beam_returns_the_true_best_sequences_in_order(
    alpha: float, source: list[int]
) -> None:
    compute = TinyRNN()
    steps = 4
    states = compute.encode(np.asarray([source], np.int32))
    everything = ranked(every_sequence(compute, 0, [s[0] for s in states], steps), alpha)
    live_choices = VOCAB - 1  # every token but the end token keeps a prefix live
    assert (
        len(everything)
        == sum(live_choices**t for t in range(steps - 1)) + live_choices ** (steps - 1) * VOCAB
    )  # 1 + 3 + 9 ending early, 27 x 4 of full length
    for width in (live_choices ** (steps - 1), 40):  # 27 live prefixes at step 3
        assert_no_near_ties(everything, alpha, width)
        beams = compute.beam_decode(
            np.asarray([source], np.int32), np.asarray([steps]), width, np.asarray([alpha])
        )
        assert_beams_are(beams, 0, everything[:width], alpha)


@pytest.mark.parametrize("alpha", [0.0, 0.7])
def test_beam_wider_than_the_possible_sequences_reports_only_those(alpha: float) -> None:
    compute = TinyRNN()
    steps = 2  # END, or 3 live tokens x 4: 13 sequences in all
    states = compute.encode(np.asarray([[2, 1]], np.int32))
    everything = ranked(every_sequence(compute, 0, [s[0] for s in states], steps), alpha)
    assert len(everything) == 13
    assert_no_near_ties(everything, alpha, 12)
    beams = compute.beam_decode(np.asarray([[2, 1]]), np.asarray([steps]), 16, np.asarray([alpha]))
    assert_beams_are(beams, 0, everything, alpha)
    exists = beams.lengths[0] > 0
    assert exists.sum() == 13
    assert np.array_equal(exists, np.isfinite(beams.scores[0]))
    rows = beam_rows(beams)  # what an answer is made of: existing hypotheses only
    assert [h.tokens for h in rows[0].hypotheses] == [h.tokens for h in everything]
    assert all(len(h.tokens) > 0 and np.isfinite(h.score) for h in rows[0].hypotheses)


def test_beam_rows_with_their_own_limits_and_alphas_equal_brute_force() -> None:
    compute = TinyRNN()
    sources = np.asarray([[1, 2], [2, 2], [3, 0], [1, 1]], np.int32)
    limits = np.asarray([4, 2, 3, 1], np.int32)
    alphas = np.asarray([0.0, 0.7, 0.3, 1.0], np.float32)
    width = 27
    beams = compute.beam_decode(sources, limits, width, alphas)
    states = compute.encode(sources)
    for i, (limit, alpha) in enumerate(zip(limits.tolist(), alphas.tolist(), strict=True)):
        everything = ranked(every_sequence(compute, 0, [s[i] for s in states], limit), alpha)
        best = everything[:width]
        assert_no_near_ties(everything, alpha, min(width, len(everything) - 1))
        assert_beams_are(beams, i, best, alpha)
        alone = compute.beam_decode(sources[i : i + 1], limits[i : i + 1], width, alphas[i : i + 1])
        np.testing.assert_array_equal(alone.lengths[0], beams.lengths[i])
        n = alone.tokens.shape[2]
        np.testing.assert_array_equal(alone.tokens[0], beams.tokens[i, :, :n])


def test_beam_from_given_states_keeps_the_best_hypothesis_state() -> None:
    compute = TinyRNN(end=None)  # no end token: every sequence has the full length
    rng = np.random.default_rng(5)
    states = [rng.uniform(-1, 1, size=(3, UNITS)).astype(np.float32)]
    tokens = np.asarray([0, 1, 2], np.int32)
    beams = compute.beam(tokens, states, np.asarray([3, 3, 3]), 16, np.zeros(3, np.float32))
    for i in range(3):
        everything = ranked(every_sequence(compute, int(tokens[i]), [states[0][i]], 3), 0.0)
        assert len(everything) == VOCAB**3
        assert_no_near_ties(everything, 0.0, 16)
        assert_beams_are(beams, i, everything[:16], 0.0)


# ---- width 1 against greedy ----------------------------------------------------------


def greedy_and_width_one(
    compute: ReferenceCompute, sources: np.ndarray, limits: np.ndarray
) -> tuple[Any, Beams]:
    greedy = compute.decode(sources, limits, False)
    beams = compute.beam_decode(sources, limits, 1, np.zeros(len(sources), np.float32))
    return greedy, beams


def assert_width_one_is_greedy(greedy: Any, beams: Beams, i: int) -> None:
    n = int(greedy.lengths[i])
    assert beams.lengths[i, 0] == n, f"row {i}"
    assert beams.tokens[i, 0, :n].tolist() == greedy.tokens[i, :n].tolist(), f"row {i}"
    assert_close(beams.scores[i, 0], greedy.scores[i, :n].astype(np.float64).sum(), f"row {i}")
    assert_close(beams.step_scores[i, 0, :n], greedy.scores[i, :n], f"row {i}")


def all_sources(length: int = 2) -> np.ndarray:
    grid = np.stack(np.meshgrid(*[np.arange(VOCAB)] * length), -1).reshape(-1, length)
    return grid.astype(np.int32)


def test_beam_width_one_is_greedy_without_an_end_token() -> None:
    compute = TinyRNN(end=None)
    sources = all_sources()
    limits = np.asarray([1 + i % 5 for i in range(len(sources))], np.int32)
    greedy, beams = greedy_and_width_one(compute, sources, limits)
    for i in range(len(sources)):
        assert_width_one_is_greedy(greedy, beams, i)


def test_beam_width_one_is_greedy_on_a_confident_model_with_an_end_token() -> None:
    m = fakes.model("words", vocabulary=True, end_token=7)  # 0.9 for the chosen token
    sources = np.asarray([[s] for s in range(8)], np.int32)
    limits = np.full(8, 9, np.int32)
    greedy, beams = greedy_and_width_one(m.compute, sources, limits)  # type: ignore[arg-type]
    assert sorted(set(greedy.lengths.tolist())) != [9]  # some rows end at the end token
    for i in range(len(sources)):
        assert_width_one_is_greedy(greedy, beams, i)


def test_beam_width_one_is_greedy_with_an_end_token() -> None:
    """An ending counts only among the best `width` extensions, so an end token that is
    second best at some step never outranks the greedy path at width 1."""
    compute = TinyRNN()
    sources = all_sources(3)
    limits = np.full(len(sources), 5, np.int32)
    greedy, beams = greedy_and_width_one(compute, sources, limits)
    for i in range(len(sources)):
        assert_width_one_is_greedy(greedy, beams, i)


# ---- sampling's rule -----------------------------------------------------------------


def test_same_seeds_and_steps_draw_the_same_numbers() -> None:
    seeds = rule.row_seeds(12345, 64)
    steps = np.arange(64, dtype=np.int32)
    u = rule.uniform(seeds, steps)
    np.testing.assert_array_equal(u, rule.uniform(seeds.copy(), steps.copy()))  # exact: a hash
    assert u.dtype == np.float32 and ((u >= 0) & (u < 1)).all()
    assert len(set(u.tolist())) == 64
    assert not np.array_equal(u, rule.uniform(rule.row_seeds(12346, 64), steps))
    assert not np.array_equal(u, rule.uniform(seeds, steps + 1))


@pytest.mark.parametrize("seed", [0, 1, 2**63 - 1, 987654321])
def test_a_rows_stream_does_not_depend_on_its_batch(seed: int) -> None:
    np.testing.assert_array_equal(rule.row_seeds(seed, 5)[:2], rule.row_seeds(seed, 2))
    np.testing.assert_array_equal(rule.row_seeds(seed, 300)[:5], rule.row_seeds(seed, 5))
    assert len(set(rule.row_seeds(seed, 300).tolist())) == 300
    # a row's draws at its steps, whatever else is drawn beside it
    seeds = rule.row_seeds(seed, 4)
    together = rule.uniform(seeds, np.asarray([3, 0, 9, 1], np.int32))
    for i, t in enumerate([3, 0, 9, 1]):
        alone = rule.uniform(seeds[i : i + 1], np.asarray([t], np.int32))
        assert together[i] == alone[0]


def random_probs(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    p = rng.dirichlet(np.ones(vocab), size=batch).astype(np.float32)
    return p


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(0.0, 0, 1.0), (0.0, 3, 0.5), (1.0, 1, 1.0), (3.0, 1, 0.9), (1.0, 0, 1e-6), (5.0, 4, 1e-6)],
)
def test_argmax_limits(temperature: float, top_k: int, top_p: float) -> None:
    rng = np.random.default_rng(3)
    batch, vocab = 500, 9
    probs = random_probs(rng, batch, vocab)
    u = rule.uniform(rule.row_seeds(42, batch), np.zeros(batch, np.int32))
    chosen = rule.choose(
        probs,
        np.full(batch, temperature, np.float32),
        np.full(batch, top_k, np.int32),
        np.full(batch, top_p, np.float32),
        u,
    )
    np.testing.assert_array_equal(chosen, probs.argmax(axis=1))


def test_each_row_uses_its_own_parameters() -> None:
    rng = np.random.default_rng(4)
    batch, vocab = 300, 7
    probs = random_probs(rng, batch, vocab)
    temperature = rng.choice([0.0, 0.5, 1.0, 2.0], size=batch).astype(np.float32)
    top_k = rng.choice([0, 1, 2, 5], size=batch).astype(np.int32)
    top_p = rng.choice([1e-6, 0.5, 0.9, 1.0], size=batch).astype(np.float32)
    u = rule.uniform(rule.row_seeds(9, batch), np.arange(batch, dtype=np.int32))
    together = rule.choose(probs, temperature, top_k, top_p, u)
    for i in range(batch):
        s = slice(i, i + 1)
        assert rule.choose(probs[s], temperature[s], top_k[s], top_p[s], u[s])[0] == together[i]


def expected_distribution(
    p: np.ndarray, temperature: float, top_k: int, top_p: float
) -> np.ndarray:
    """softmax(log p / T), kept to the top_k most probable and to the smallest most
    probable set whose mass reaches top_p, renormalised (float64, written anew)."""
    q = np.exp(np.log(p.astype(np.float64)) / temperature)
    q /= q.sum()
    order = np.argsort(-q, kind="stable")
    keep = np.zeros(len(q), bool)
    mass = 0.0
    for rank, token in enumerate(order):
        if (top_k and rank >= top_k) or mass >= top_p:
            break
        keep[token] = True
        mass += q[token]
    out = np.where(keep, q, 0.0)
    result: np.ndarray = out / out.sum()
    return result


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"),
    [(1.0, 0, 1.0), (0.7, 0, 1.0), (2.0, 0, 1.0), (1.0, 3, 1.0), (1.0, 0, 0.7), (1.3, 4, 0.8)],
)
def test_draws_follow_the_tempered_truncated_distribution(
    temperature: float, top_k: int, top_p: float
) -> None:
    p = np.asarray([0.31, 0.24, 0.18, 0.12, 0.08, 0.05, 0.02], np.float32)
    draws = 20_000
    want = expected_distribution(p, temperature, top_k, top_p)
    # one stream per draw (as rows of a batch), and one stream over many steps
    by_rows = rule.uniform(rule.row_seeds(2026, draws), np.zeros(draws, np.int32))
    by_steps = rule.uniform(
        np.full(draws, rule.row_seeds(11, 1)[0]), np.arange(draws, dtype=np.int32)
    )
    for u in (by_rows, by_steps):
        chosen = rule.choose(
            np.tile(p, (draws, 1)),
            np.full(draws, temperature, np.float32),
            np.full(draws, top_k, np.int32),
            np.full(draws, top_p, np.float32),
            u,
        )
        counts = np.bincount(chosen, minlength=len(p))
        kept = want > 0
        assert counts[~kept].sum() == 0, f"drawn outside the kept tokens: {counts}"
        result = chisquare(counts[kept], want[kept] * draws)
        assert result.pvalue > 1e-3, (counts, want * draws, result)


# ---- the wire rules (HTTP on fakes) ----------------------------------------------------

MAX_BEAM = 5
WORK = 30  # a counter row of 2 source tokens x 10 steps fits greedy (12), not x 4 beams (42)


@pytest.fixture(scope="module")
def api() -> Iterator[TestClient]:
    settings = Settings(
        max_batch_size=4,
        max_sequence_length=6,
        max_decode_steps=10,
        max_sessions=50,
        max_beam_width=MAX_BEAM,
        max_steps_per_request=WORK,
    )
    store = MemorySessionStore(settings.session_ttl_seconds, settings.max_sessions)
    app = create_app(settings, registry=fakes.registry(), store=store)
    with TestClient(app) as client:
        yield client


def refused(response: Any, field: str) -> str:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["field"] == field, error
    message: str = error["message"]
    return message


def counter_session(api: TestClient) -> str:
    r = api.post("/v1/sessions", json={"model": "counter", "source": [1, 2]})
    assert r.status_code == 201, r.text
    return str(r.json()["session_id"])


def post(api: TestClient, route: str, body: dict[str, Any]) -> Any:
    """`route`: predict (both routes) or a fresh counter session's generate."""
    if route == "generate":
        return api.post(f"/v1/sessions/{counter_session(api)}/generate", json=body)
    if route == "/predict":
        return api.post("/predict", json={"model": "counter", "inputs": [[1, 2]], **body})
    return api.post("/v1/models/counter/predict", json={"inputs": [[1, 2]], **body})


ROUTES = ["/predict", "/v1/models/counter/predict", "generate"]
MISPLACED = [
    ("beam_width", 2, "beam"),
    ("length_penalty", 0.5, "beam"),
    ("num_return_sequences", 1, "beam"),
    ("temperature", 0.5, "sample"),
    ("top_k", 2, "sample"),
    ("top_p", 0.5, "sample"),
    ("seed", 3, "sample"),
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("name", "value", "wants"), MISPLACED)
def test_an_option_without_its_strategy_is_refused_naming_both(
    api: TestClient, route: str, name: str, value: object, wants: str
) -> None:
    others = [s for s in ("greedy", "beam", "sample") if s != wants]
    for strategy in [None, *others]:
        body: dict[str, Any] = {name: value, "max_steps": 2}
        if strategy is not None:
            body["strategy"] = strategy
        message = refused(post(api, route, body), name)
        assert name in message and f"strategy '{wants}'" in message, message
    with_it = post(api, route, {name: value, "strategy": wants, "max_steps": 2})
    assert with_it.status_code == 200, with_it.text


@pytest.mark.parametrize("route", ROUTES)
def test_beam_limits_are_refused_naming_the_field_and_the_range(
    api: TestClient, route: str
) -> None:
    beam = {"strategy": "beam", "max_steps": 2}
    for width in (MAX_BEAM + 1, 0, 1000):
        message = refused(post(api, route, {**beam, "beam_width": width}), "beam_width")
        assert f"allowed: 1..{MAX_BEAM}" in message and "SERVICE_MAX_BEAM_WIDTH" in message
    assert post(api, route, {**beam, "beam_width": MAX_BEAM}).status_code == 200
    for width, n in ((2, 3), (MAX_BEAM, MAX_BEAM + 1), (1, 2)):
        body = {**beam, "beam_width": width, "num_return_sequences": n}
        message = refused(post(api, route, body), "num_return_sequences")
        assert f"allowed: 1..{width}" in message and "beam_width" in message, message
    # without beam_width, the width is the default (4) or n if more, within the limit
    answer = post(api, route, {**beam, "num_return_sequences": MAX_BEAM})
    assert answer.status_code == 200, answer.text
    message = refused(
        post(api, route, {**beam, "num_return_sequences": MAX_BEAM + 1}), "num_return_sequences"
    )
    assert f"allowed: 1..{MAX_BEAM}" in message
    message = refused(post(api, route, {**beam, "num_return_sequences": 0}), "num_return_sequences")
    assert "allowed: 1..4" in message


@pytest.mark.parametrize("route", ROUTES)
def test_beam_with_return_probabilities_is_refused(api: TestClient, route: str) -> None:
    body = {"strategy": "beam", "max_steps": 2, "return_probabilities": True}
    message = refused(post(api, route, body), "return_probabilities")
    assert "beam" in message and "return_scores" in message
    sampled = {"strategy": "sample", "max_steps": 2, "return_probabilities": True}
    assert post(api, route, sampled).status_code == 200


@pytest.mark.parametrize("strategy", ["beam", "sample"])
def test_a_step_models_predict_is_greedy_only(api: TestClient, strategy: str) -> None:
    for route in ("/v1/models/stepper/predict", "/predict"):
        body: dict[str, Any] = {"inputs": [[1, 2]], "strategy": strategy}
        if route == "/predict":
            body["model"] = "stepper"
        message = refused(api.post(route, json=body), "strategy")
        assert "'stepper'" in message and "greedy" in message and "generate" in message
    ok = api.post("/v1/models/stepper/predict", json={"inputs": [[1, 2]], "strategy": "greedy"})
    assert ok.status_code == 200


def test_the_work_bound_counts_the_beam_width(api: TestClient) -> None:
    body = {"inputs": [[1, 2]], "max_steps": 10}
    assert api.post("/v1/models/counter/predict", json=body).status_code == 200
    sample = {**body, "strategy": "sample"}
    assert api.post("/v1/models/counter/predict", json=sample).status_code == 200
    for beam in ({"strategy": "beam", "beam_width": 4}, {"strategy": "beam"}):  # default 4
        r = api.post("/v1/models/counter/predict", json={**body, **beam})
        message = refused(r, "inputs")
        assert "beam_width 4" in message and "42" in message and "SERVICE_MAX_STEPS" in message
    # width 2: 2 + 10 x 2 = 22 fits
    ok = {**body, "strategy": "beam", "beam_width": 2}
    assert api.post("/v1/models/counter/predict", json=ok).status_code == 200
    # session generate: 10 steps greedy, 40 with 4 beams
    sid = counter_session(api)
    generate = f"/v1/sessions/{sid}/generate"
    message = refused(api.post(generate, json={"max_steps": 10, "strategy": "beam"}), "max_steps")
    assert "beam_width 4" in message and "40" in message
    assert api.post(generate, json={"max_steps": 10}).status_code == 200


@pytest.mark.parametrize("route", ROUTES)
def test_an_unknown_strategy_lists_the_allowed_ones(api: TestClient, route: str) -> None:
    for value in ("topk", "Beam", "", 3):
        message = refused(post(api, route, {"strategy": value}), "strategy")
        assert all(f"'{s}'" in message for s in ("greedy", "beam", "sample")), message


def test_answers_carry_what_each_strategy_promises(api: TestClient) -> None:
    beam = {"strategy": "beam", "beam_width": 3, "num_return_sequences": 3, "max_steps": 2}
    r = api.post("/v1/models/counter/predict", json={"inputs": [[1, 2], [4]], **beam}).json()
    assert [len(s) for s in r["sequences"]] == [3, 3] and [len(s) for s in r["scores"]] == [3, 3]
    assert [s[0] for s in r["sequences"]] == r["outputs"] and "step_scores" not in r
    assert all(s == sorted(s, reverse=True) for s in r["scores"])
    r = api.post(
        "/v1/models/counter/predict",
        json={"inputs": [[1, 2]], "strategy": "sample", "seed": 5, "return_scores": True},
    ).json()
    assert r["seed"] == 5 and len(r["scores"][0]) == 1
    assert_close(r["scores"][0][0], sum(r["step_scores"][0][0]))
    r = api.post("/v1/models/counter/predict", json={"inputs": [[1]], "strategy": "sample"}).json()
    assert isinstance(r["seed"], int) and 0 <= r["seed"] < 2**63  # a random seed, returned


def test_beam_rows_in_decode_match_the_plan() -> None:
    """decoding.decode over a beam group returns `wanted` hypotheses per row."""
    compute = TinyRNN()
    rows = decode(
        compute,
        [[1, 2], [3], [2, 2]],
        [4, 2, 3],
        False,
        [Decoding("beam", beam_width=5, length_penalty=a) for a in (0.0, 0.7, 0.3)],
        wanted=[1, 5, 2],
    )
    assert [len(r.hypotheses) for r in rows] == [1, 5, 2]
    for r in rows:
        for h in r.hypotheses:
            assert_close(h.score, sum(h.step_scores))


@pytest.fixture(scope="module")
def tiny_api() -> Iterator[TestClient]:
    tiny = TinyRNN()
    registry = Registry({"tiny": {1: LoadedModel(tiny.spec, tiny)}})
    with TestClient(create_app(Settings(max_beam_width=16), registry=registry)) as client:
        yield client


@pytest.mark.parametrize(("steps", "possible"), [(1, 4), (2, 13)])
def test_more_return_sequences_than_possible_outputs_answers_each_once(
    tiny_api: TestClient, steps: int, possible: int
) -> None:
    """Beam search never invents a hypothesis: asked for 16 where only `possible`
    sequences exist, each comes once, with its true log-probability."""
    source = [1, 2]
    compute = TinyRNN()
    states = compute.encode(np.asarray([source], np.int32))
    everything = ranked(every_sequence(compute, 0, [s[0] for s in states], steps), 0.0)
    assert len(everything) == possible
    body = {
        "inputs": [source],
        "max_steps": steps,
        "strategy": "beam",
        "beam_width": 16,
        "num_return_sequences": 16,
        "return_scores": True,
    }
    r = tiny_api.post("/v1/models/tiny/predict", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["sequences"][0] == [h.tokens for h in everything], answer
    assert all(s is not None for s in answer["scores"][0]), answer
    assert_close(answer["scores"][0], [h.score for h in everything])
    for got, hyp in zip(answer["step_scores"][0], everything, strict=True):
        assert_close(got, hyp.steps)


def test_a_sampled_session_continues_one_stream_across_generate_calls(api: TestClient) -> None:
    """Each generate call draws from the session's stream at its step count, so two
    calls of 4 tokens draw what one call of 8 does."""
    body = {"strategy": "sample", "seed": 7, "temperature": 5.0}
    whole_id, parts_id = counter_session(api), counter_session(api)
    whole = api.post(f"/v1/sessions/{whole_id}/generate", json={**body, "max_steps": 8})
    parts = [
        api.post(f"/v1/sessions/{parts_id}/generate", json={**body, "max_steps": 4})
        for _ in range(2)
    ]
    assert whole.status_code == 200 and all(p.status_code == 200 for p in parts)
    drawn = parts[0].json()["outputs"] + parts[1].json()["outputs"]
    assert drawn == whole.json()["outputs"]
    greedy = api.post(f"/v1/sessions/{counter_session(api)}/generate", json={"max_steps": 8})
    assert drawn != greedy.json()["outputs"]  # a hot temperature: really drawn
