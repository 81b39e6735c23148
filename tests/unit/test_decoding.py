import numpy as np
import pytest

from service.inference.model.interface import GREEDY
from service.inference.serving.decoding import generate_rows, greedy_decode, run_steps
from tests.fakes import model

pytestmark = pytest.mark.unit


def test_greedy_feeds_back_each_chosen_token() -> None:
    m = model()
    # source sum 8 % 8 = 0 -> offset 0: start 0 -> 1 -> 2 -> 3
    outputs, probs = greedy_decode(m.compute, [[4, 4]], 3, False)
    assert outputs == [[1, 2, 3]]
    assert probs is None


def test_end_token_stops_each_row_and_is_included() -> None:
    m = model(end_token=2)
    outputs, probs = greedy_decode(m.compute, [[8], [1]], 5, True)
    assert outputs[0] == [1, 2]  # offset 0: 1, 2=end
    assert outputs[1] == [2]  # offset 1: 0+1+1 = 2 = end at once
    assert probs is not None and [len(p) for p in probs] == [2, 1]


def test_mixed_lengths_in_a_batch_match_single_decodes() -> None:
    m = model()
    sources = [[1, 2, 3], [5], [7, 7], [2, 2, 2], [6]]
    batched, _ = greedy_decode(m.compute, sources, 4, False)
    singles = [greedy_decode(m.compute, [s], 4, False)[0][0] for s in sources]
    assert batched == singles


def test_run_steps_split_equals_one_run() -> None:
    m = model(kind="step")
    seq = [1, 3, 5, 2, 6]
    whole = run_steps(m.compute, m.spec.zero_states(1), [seq], False)
    first = run_steps(m.compute, m.spec.zero_states(1), [seq[:2]], False)
    second = run_steps(m.compute, first.states, [seq[2:]], False)
    assert first.outputs[0] + second.outputs[0] == whole.outputs[0]
    for a, b in zip(second.states, whole.states, strict=True):
        np.testing.assert_array_equal(a, b)  # exact: the fake's states are small integers


def test_run_steps_rows_keep_their_own_states() -> None:
    m = model(kind="step")
    states = m.spec.zero_states(2)
    states[0][1] = 3.0  # row 1 offset 3
    run = run_steps(m.compute, states, [[1, 2], [1, 2, 3]], False)
    assert run.outputs == [[2, 3], [5, 6, 7]]
    assert run.states[1][0, 0, 0] == 2.0 and run.states[1][1, 0, 0] == 3.0


def test_generate_keeps_state_of_the_end_step() -> None:
    m = model(end_token=2)
    start = np.asarray([0, 0], np.int32)
    rows = generate_rows(m.compute, start, m.spec.zero_states(2), [6, 6], False, [GREEDY] * 2)
    assert [r.outputs for r in rows] == [[1, 2], [1, 2]]
    assert rows[0].states[1][0, 0] == 2.0  # two steps, not six


def test_per_row_step_limits() -> None:
    m = model()
    outputs, probs = greedy_decode(m.compute, [[8], [8], [8]], [1, 3, 2], True)
    assert outputs == [[1], [1, 2, 3], [1, 2]]
    assert probs is not None and [len(p) for p in probs] == [1, 3, 2]
