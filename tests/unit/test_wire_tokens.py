"""Tokens are validated by pydantic-core alone, and a list stops at its first wrong
item: a body of many wrong tokens costs one error, not one per token."""

import json

import pytest
from pydantic import ValidationError

from service.wire.native import PredictRequest
from service.wire.tfserving import TFPredictRequest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("bad", [True, 2.0, None, [1]])
def test_a_token_is_an_integer_or_a_string(bad: object) -> None:
    assert PredictRequest.model_validate_json('{"inputs": [[1, "a"]]}').inputs == [[1, "a"]]
    with pytest.raises(ValidationError) as info:
        PredictRequest.model_validate_json(json.dumps({"inputs": [[1, bad]]}))
    (error,) = info.value.errors()
    assert error["type"] == "token_type" and error["loc"] == ("inputs", 0, "tokens", 1)
    assert "a token must be an integer id or a vocabulary string" in error["msg"]


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [[True] * 100_000]},  # one sequence of wrong tokens
        {"inputs": [[True]] * 100_000},  # many sequences, each wrong
    ],
)
def test_many_wrong_tokens_are_one_error(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as info:
        PredictRequest.model_validate_json(json.dumps(body))
    assert len(info.value.errors()) == 1


@pytest.mark.parametrize("field", ["instances", "inputs"])
def test_tf_serving_bodies_stop_at_the_first_wrong_row(field: str) -> None:
    with pytest.raises(ValidationError) as info:
        TFPredictRequest.model_validate_json(json.dumps({field: [[True]] * 100_000}))
    assert len(info.value.errors()) == 1
