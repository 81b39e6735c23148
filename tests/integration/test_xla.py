"""XLA programs (SERVICE_XLA) against the TF graphs, in-process: greedy decode, session
steps (the teacher-forced run), generate, beam search, sampling (same seeds), encode and
one step give identical tokens and floats within 1e-5. Batches of three rows run padded
to the bucket of four, so every comparison is also one of a padded bucket against the
unpadded batch.

Every run of the suite checks the shipped model memory (the session operations: step,
run, generate, beam, sampling). reverse (every seq2seq operation, 8 s), dates and every
user model of tests/user_models.py (Keras 3: keras-io's characters, GRU with attention,
logits in another order, SimpleRNN, stacked and bidirectional LSTMs) take 8 s of
compiling for reverse and 66 more XLA programs for the others, over a minute on a quiet
2-core machine and four on a busy one, so those run with
SERVICE_TEST_XLA_MATRIX=1 (`make test-xla`, run by .ci/run; reported as skipped
otherwise).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from service.inference.compiled import warmup, xla, xla_plan
from service.inference.compiled.keras_model import KerasCompute
from service.inference.compiled.loader import build_model, load_store
from service.inference.model.formats.keras_file import KerasGraph
from service.inference.model.interface import Beams, Decoded, LoadedModel, Sampling
from service.inference.model.manifest import Manifest
from tests import user_models
from tests.floats import assert_close
from tests.harness import STORE

pytestmark = pytest.mark.integration

ROWS = 3  # padded to the bucket of 4
MATRIX = pytest.mark.skipif(
    os.environ.get("SERVICE_TEST_XLA_MATRIX") != "1",
    reason="XLA vs graphs on reverse, dates and the user models takes minutes: make test-xla "
    "runs it",
)


@pytest.fixture(scope="module")
def xla_auto() -> Iterator[None]:
    """Models loaded here get XLA programs; none compiled ahead (lazy)."""
    policy, mode = warmup.configured(), xla.mode()
    warmup.configure("lazy")
    xla.configure("auto", 256)
    xla.start()
    yield
    warmup.configure(policy)
    xla.configure(mode, 256)


@pytest.fixture(scope="module")
def shipped(xla_auto: None) -> dict[str, LoadedModel]:
    registry = load_store(STORE)
    return {name: registry.get(name) for name in registry.names()}


@pytest.fixture(scope="module")
def users(xla_auto: None) -> dict[str, LoadedModel]:
    import keras

    keras.utils.set_random_seed(7)
    out = {}
    for build in user_models.ALL:
        model = build()
        manifest = Manifest.model_validate(model.manifest)
        encoder, decoder = KerasGraph(model.encoder), KerasGraph(model.decoder)
        out[model.name] = build_model(model.name, 1, manifest, encoder, decoder, warm_up=False)
    return out


class Pairs:
    """Calls answered by the TF graph, then, once their buckets are compiled (all at
    once, on the pool's threads), by XLA: `check` compares each pair."""

    def __init__(self, compute: KerasCompute) -> None:
        self.compute = compute
        self.calls: list[tuple[Callable[[KerasCompute], Any], Callable[[Any, Any], None]]] = []

    def add(self, call: Callable[[KerasCompute], Any], same: Callable[[Any, Any], None]) -> None:
        self.calls.append((call, same))

    def check(self) -> None:
        compute, compiler = self.compute, self.compute.xla
        assert compiler is not None
        with compute.graphs_only():
            graph = [call(compute) for call, _ in self.calls]
        for call, _ in self.calls:
            call(compute)  # meets its bucket: queued for the pool, answered by the graph
        assert xla.wait(600), "the XLA pool did not finish"
        assert compiler.usable, compiler.failure
        for (call, same), expected in zip(self.calls, graph, strict=True):
            runs = compiler.runs
            got = call(compute)
            assert compiler.runs == runs + 1, "XLA did not answer"
            same(expected, got)


def same_decoded(what: str) -> Callable[[Decoded, Decoded], None]:
    return lambda graph, got: _same_decoded(graph, got, what)


def same_beams(what: str) -> Callable[[Beams, Beams], None]:
    return lambda graph, got: _same_beams(graph, got, what)


def same_arrays(what: str) -> Callable[[Any, Any], None]:
    def same(graph: Any, got: Any) -> None:
        flat = [graph[0], *graph[1]] if isinstance(graph, tuple) else graph
        flat_got = [got[0], *got[1]] if isinstance(got, tuple) else got
        assert len(flat) == len(flat_got), what
        for a, b in zip(flat_got, flat, strict=True):
            assert_close(a, b, what)

    return same


def _same_decoded(graph: Decoded, got: Decoded, what: str) -> None:
    np.testing.assert_array_equal(got.tokens, graph.tokens, err_msg=what)
    np.testing.assert_array_equal(got.lengths, graph.lengths, err_msg=what)
    assert (got.probabilities is None) == (graph.probabilities is None), what
    if graph.probabilities is not None:
        assert_close(got.probabilities, graph.probabilities, what)
    assert got.scores is not None and graph.scores is not None
    assert_close(got.scores, graph.scores, what)
    assert len(got.states) == len(graph.states), what
    for a, b in zip(got.states, graph.states, strict=True):
        assert_close(a, b, what)


def _same_beams(graph: Beams, got: Beams, what: str) -> None:
    assert got.steps_run == graph.steps_run, what
    np.testing.assert_array_equal(got.lengths, graph.lengths, err_msg=what)
    assert_close(got.scores, graph.scores, what)
    assert_close(got.ranking, graph.ranking, what)
    exists = graph.lengths > 0  # a hypothesis that does not exist has no tokens to compare
    np.testing.assert_array_equal(got.tokens[exists], graph.tokens[exists], err_msg=what)
    assert_close(got.step_scores[exists], graph.step_scores[exists], what)
    for a, b in zip(got.states, graph.states, strict=True):
        assert_close(a, b, what)


def sampling(rows: int) -> Sampling:
    return Sampling(
        temperature=np.asarray([1.0, 0.7, 0.0][:rows], np.float32),
        top_k=np.asarray([0, 3, 0][:rows], np.int32),
        top_p=np.asarray([1.0, 0.9, 1.0][:rows], np.float32),
        seeds=np.asarray([11, 12, 13][:rows], np.uint64),
        offsets=np.asarray([0, 2, 0][:rows], np.int32),
    )


def check_model(model: LoadedModel) -> None:
    """Every operation's XLA answer against the graph's, on ROWS rows."""
    compute = model.compute
    assert isinstance(compute, KerasCompute)
    spec, rng = model.spec, np.random.default_rng(5)
    name = spec.name
    limits = np.asarray([spec.manifest.max_steps, 1, 2][:ROWS], np.int32)
    alpha = np.asarray([0.0, 0.6, 1.0][:ROWS], np.float32)
    card = spec.manifest.token_side.size
    tokens = rng.integers(0, card, ROWS).astype(np.int32)
    pairs = Pairs(compute)
    if compute.seq2seq:
        source = spec.manifest.source
        length = source.length or 5
        sources = rng.integers(1, source.size, (ROWS, length)).astype(np.int32)
        for probs in (False, True):
            pairs.add(
                lambda c, p=probs: c.decode(sources, limits, p),
                same_decoded(f"{name} decode probs={probs}"),
            )
        pairs.add(
            lambda c: c.decode(sources, limits, True, sampling(ROWS)),
            same_decoded(f"{name} sampled decode"),
        )
        pairs.add(
            lambda c: c.beam_decode(sources, limits, 3, alpha), same_beams(f"{name} beam decode")
        )
        pairs.add(lambda c: c.encode(sources), same_arrays(f"{name} encode"))
        with compute.graphs_only():
            states = compute.encode(sources)
    else:
        states = [rng.normal(0, 0.5, (ROWS, *s)).astype(np.float32) for s in spec.state_shapes]
    pairs.add(lambda c: c.generate(tokens, states, limits, False), same_decoded(f"{name} generate"))
    pairs.add(
        lambda c: c.generate(tokens, states, limits, True, sampling(ROWS)),
        same_decoded(f"{name} sampled generate"),
    )
    pairs.add(lambda c: c.beam(tokens, states, limits, 2, alpha), same_beams(f"{name} beam"))
    steps = rng.integers(0, card, (ROWS, 5)).astype(np.int32)
    for probs in (False, True):
        pairs.add(
            lambda c, p=probs: c.run(steps, states, p), same_decoded(f"{name} run probs={probs}")
        )
    pairs.add(lambda c: c.step(tokens, states), same_arrays(f"{name} step"))
    with compute.graphs_only():
        kept = compute.kv_states(states)
    if compute.extended(kept):  # a Transformer's key/value caches, as sessions keep them
        what = f"{name} with kept caches"
        pairs.add(
            lambda c: c.generate(tokens, kept, limits, True), same_decoded(f"{what} generate")
        )
        pairs.add(
            lambda c: c.generate(tokens, kept, limits, False, sampling(ROWS)),
            same_decoded(f"{what} sampled generate"),
        )
        pairs.add(lambda c: c.run(steps, kept, False), same_decoded(f"{what} run"))
    pairs.check()


@pytest.mark.parametrize(
    "name",
    # reverse and dates (8 s and 9 s of compiling) with the user models: `make test-xla`,
    # which .ci/run runs; in `make test`, test_xla_http.py compares reverse's and dates'
    # decodes, beams and samples over HTTP
    [pytest.param("reverse", marks=MATRIX), pytest.param("dates", marks=MATRIX), "memory"],
)
def test_xla_equals_the_graphs_on_a_shipped_model(
    shipped: dict[str, LoadedModel], name: str
) -> None:
    check_model(shipped[name])


@MATRIX
@pytest.mark.parametrize("name", [build.__name__ for build in user_models.ALL])
def test_xla_equals_the_graphs_on_a_user_model(users: dict[str, LoadedModel], name: str) -> None:
    by_builder = dict(zip([b.__name__ for b in user_models.ALL], users.values(), strict=True))
    check_model(by_builder[name])


def test_warmup_all_compiles_the_planned_buckets_before_serving(
    shipped: dict[str, LoadedModel],
) -> None:
    """SERVICE_WARMUP=all: a session step's run at every batch bucket (here up to 4)."""
    model = shipped["memory"]
    compute = model.compute
    assert isinstance(compute, KerasCompute) and compute.xla is not None
    xla.configure("auto", 4)
    try:
        plan = xla_plan.plan(compute)
        assert [(key[0], key[1][0]) for key, _ in plan] == [
            ("run", (1, 1)),
            ("run", (2, 1)),
            ("run", (4, 1)),
        ]
        warmup.prepare_xla(compute, "all")
        assert all(compute.xla.ready(key) for key, _ in plan)
        found = compute.compilation()
        assert found is not None and found.batch_sizes == [1, 2, 4]
        assert found.ready["run"] == [1, 2, 4] and found.pending == {}
    finally:
        xla.configure("auto", 256)


def test_a_program_that_raises_when_run_sends_its_bucket_back_to_the_graph(
    shipped: dict[str, LoadedModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    compute = shipped["reverse"].compute
    assert isinstance(compute, KerasCompute) and compute.xla is not None
    compiler = compute.xla
    sources = np.asarray([[20, 36, 40, 10, 34, 28], [1, 2, 3, 4, 5, 6]], np.int32)
    limits = np.full(2, 3, np.int32)
    with compute.graphs_only():
        graph = compute.decode(sources, limits, True)
    compute.decode(sources, limits, True)  # queues (2 rows, horizon 4)
    assert xla.wait(300)
    key = ("decode_probs", ((2, 6), (2,), (4,)))
    assert compiler.ready(key)

    def broken(name: str, args: Any) -> Any:
        raise RuntimeError("a program that cannot run")

    monkeypatch.setattr(compiler, "call", broken)
    _same_decoded(graph, compute.decode(sources, limits, True), "answered by the graph")
    assert not compiler.ready(key) and compiler.usable  # that bucket only
    compute.decode(sources, limits, True)
    assert 2 not in compiler.buckets()["pending"].get("decode_probs", []), "queued again"


@MATRIX
@pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning")
@pytest.mark.parametrize("layout", ["keras_io", "keras_hub"])
def test_xla_equals_the_graphs_on_a_transformer(xla_auto: None, layout: str) -> None:
    """keras-io's two Transformer layouts (tests/transformer_models.py): its custom
    layers (prefix mode) and KerasHub's (cached mode, with the "_kv" graphs too)."""
    from tests import transformer_models

    model = getattr(transformer_models, layout)()
    manifest = Manifest.model_validate(model.manifest)
    encoder, decoder = KerasGraph(model.encoder), KerasGraph(model.decoder)
    check_model(build_model(model.name, 1, manifest, encoder, decoder, warm_up=False))
