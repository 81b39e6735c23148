"""The XLA shape buckets (service/inference/compiled/buckets.py): sizes, and a padded
batch cut back equals the unpadded batch, on the numpy reference of the compiled loops
(same rules: a padded row finishes after one step and never keeps the loop running)."""

from __future__ import annotations

import numpy as np
import pytest

from service.inference.compiled import buckets as pad
from service.inference.model.interface import Sampling
from tests import fakes

pytestmark = pytest.mark.unit


def test_batch_buckets_are_powers_of_two_up_to_the_largest_batch() -> None:
    assert pad.sizes(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert pad.sizes(100) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert pad.sizes(1) == [1]
    assert [pad.bucket(n, 256) for n in (1, 2, 3, 5, 16, 17, 256)] == [1, 2, 4, 8, 16, 32, 256]
    assert pad.bucket(0, 256) == 1
    assert pad.bucket(257, 256) is None  # beyond the largest bucket: the TF graph
    assert pad.bucket(100, 100) == 128


def test_padding_appends_rows_and_columns_of_the_given_fill() -> None:
    x = np.arange(6, dtype=np.int32).reshape(3, 2)
    np.testing.assert_array_equal(pad.rows(x, 4), [[0, 1], [2, 3], [4, 5], [0, 0]])
    assert pad.rows(x, 3) is x
    np.testing.assert_array_equal(pad.limits(np.asarray([5, 2]), 4), [5, 2, 1, 1])
    np.testing.assert_array_equal(pad.columns(x, 4), [[0, 1, 0, 0], [2, 3, 0, 0], [4, 5, 0, 0]])
    assert pad.carrier(8).shape == (8,)


def _sampling(rows: int) -> Sampling:
    return Sampling(
        temperature=np.linspace(0.5, 1.5, rows).astype(np.float32),
        top_k=np.zeros(rows, np.int32),
        top_p=np.ones(rows, np.float32),
        seeds=np.arange(1, rows + 1, dtype=np.uint64),
        offsets=np.zeros(rows, np.int32),
    )


@pytest.mark.parametrize("sampled", [False, True])
def test_a_padded_generate_cut_back_equals_the_unpadded_one(sampled: bool) -> None:
    model = fakes.model(end_token=7)
    compute = model.compute
    sources = np.asarray([[1, 2], [3, 4], [5, 6]], np.int32)
    states = compute.encode(sources)
    tokens = np.zeros(3, np.int32)
    limits = np.asarray([6, 2, 4], np.int32)
    sampling = _sampling(3) if sampled else None
    alone = compute.generate(tokens, states, limits, True, sampling)
    padded = compute.generate(
        pad.rows(tokens, 8),
        pad.states(states, 8),
        pad.limits(limits, 8),
        True,
        None if sampling is None else pad.sampling(sampling, 8),
    )
    assert padded.tokens.shape[1] == alone.tokens.shape[1]  # padded rows end at once
    cut = pad.cut_decoded(padded, 3, alone.tokens.shape[1])
    np.testing.assert_array_equal(cut.tokens, alone.tokens)
    np.testing.assert_array_equal(cut.lengths, alone.lengths)
    assert cut.probabilities is not None and alone.probabilities is not None
    np.testing.assert_allclose(cut.probabilities, alone.probabilities, rtol=1e-5, atol=1e-5)
    for a, b in zip(cut.states, alone.states, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_padded_run_cut_back_equals_the_unpadded_one() -> None:
    compute = fakes.model().compute
    states = compute.encode(np.asarray([[1, 2], [3, 4], [5, 6]], np.int32))
    tokens = np.asarray([[1, 2, 3], [4, 5, 6], [0, 1, 0]], np.int32)
    alone = compute.run(tokens, states, True)
    padded = compute.run(pad.rows(tokens, 4), pad.states(states, 4), True)
    cut = pad.cut_decoded(padded, 3, 3)
    np.testing.assert_array_equal(cut.tokens, alone.tokens)
    for a, b in zip(cut.states, alone.states, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_padded_beam_search_cut_back_equals_the_unpadded_one() -> None:
    compute = fakes.model(end_token=7).compute
    sources = np.asarray([[1, 2], [3, 4], [5, 6]], np.int32)
    limits = np.asarray([5, 3, 4], np.int32)
    alpha = np.asarray([0.0, 0.6, 1.0], np.float32)
    alone = compute.beam_decode(sources, limits, 3, alpha)
    padded = compute.beam_decode(pad.rows(sources, 4), pad.limits(limits, 4), 3, pad.rows(alpha, 4))
    assert padded.steps_run == alone.steps_run
    cut = pad.cut_beams(padded, 3)
    np.testing.assert_array_equal(cut.tokens, alone.tokens)
    np.testing.assert_array_equal(cut.lengths, alone.lengths)
    np.testing.assert_allclose(cut.scores, alone.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cut.ranking, alone.ranking, rtol=1e-5, atol=1e-5)
