"""A large answer serialised in pieces is byte for byte the answer serialised whole."""

from __future__ import annotations

import anyio
import numpy as np
import pytest

from service.api.bodies import pieces as json_pieces
from service.api.bodies.pieces import pieces, serialised
from service.wire.native import PredictResponse
from service.wire.tfserving import TFRowResponse

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_pieces, "PIECE", 5)  # every list of more than 5 values is cut


def test_a_model_in_pieces_is_model_dump_json() -> None:
    rng = np.random.default_rng(3)
    probabilities = rng.random((4, 6, 3)).astype(np.float32).tolist()
    probabilities[1][2][0] = float("-inf")  # null, as model_dump_json writes it
    for answer in [
        PredictResponse.model_construct(
            model="m",
            version="1",
            outputs=[[1, 2, 3], "text"],
            probabilities=probabilities,
            scores=[[-0.5], [-1e-7]],
            seed=None,
        ),
        PredictResponse(model="m", version="1", outputs=[["a", "é"] * 9]),
        TFRowResponse.model_construct(predictions=[[i] * 7 for i in range(9)]),
    ]:
        whole = answer.model_dump_json(exclude_none=True).encode()
        assert b"".join(pieces(answer)) == whole
        assert anyio.run(serialised, answer) == whole
        assert len(list(pieces(answer))) > 10


def test_numpy_arrays_are_flat_lists() -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7
    answer = {"outputs": [{"name": "x", "data": data}, {"name": "y", "data": None}]}
    expected = json_pieces.to_json(
        {"outputs": [{"name": "x", "data": data.reshape(-1).tolist()}, {"name": "y", "data": None}]}
    )
    assert b"".join(pieces(answer)) == expected
    assert anyio.run(serialised, answer) == expected
    small = {"data": np.arange(3)}
    assert anyio.run(serialised, small) == b'{"data":[0,1,2]}'
