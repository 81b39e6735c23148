"""Roles of model tensors: inferred from shapes, or named by the manifest."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from service.inference.model.layout import infer_layout
from service.inference.model.manifest import Manifest, ManifestError

pytestmark = pytest.mark.unit


class T(NamedTuple):
    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


def manifest(**extra: object) -> Manifest:
    return Manifest.model_validate(
        {
            "kind": "seq2seq",
            "source": {"encoding": "one_hot", "cardinality": 20},
            "target": {"encoding": "one_hot", "cardinality": 13},
            "start_token": 0,
            **extra,
        }
    )


SOURCE = [T("source", (None, None, 20))]


def test_default_lstm_layout() -> None:
    layout = infer_layout(
        manifest(),
        [T("token", (None, 1, 13)), T("h", (None, 64)), T("c", (None, 64))],
        [T("probs", (None, 1, 13)), T("h_out", (None, 64)), T("c_out", (None, 64))],
        [T("h", (None, 64)), T("c", (None, 64))],
        SOURCE,
    )
    assert (layout.decoder_token, layout.decoder_states, layout.decoder_probabilities) == (
        0,
        (1, 2),
        0,
    )
    assert layout.decoder_state_outputs == (1, 2) and layout.encoder_states == (0, 1)
    assert layout.state_shapes == ((64,), (64,)) and layout.memory_shape is None


def test_attention_memory_in_the_common_order() -> None:
    layout = infer_layout(
        manifest(),
        [T("tok", (None, None, 13)), T("enc", (None, 31, 128)), T("h", (None, 128))],
        [T("p", (None, None, 13)), T("h2", (None, 128))],
        [T("seq", (None, 31, 128)), T("h", (None, 128))],
        SOURCE,
    )
    assert (layout.decoder_token, layout.decoder_memory, layout.decoder_states) == (0, 1, (2,))
    assert (layout.encoder_memory, layout.encoder_states) == (0, (1,))
    assert layout.memory_shape == (31, 128)


def test_other_order_with_attention_weights_is_inferred() -> None:
    """[enc_out, state, token] -> [probabilities, attention weights, state]"""
    layout = infer_layout(
        manifest(),
        [T("enc", (None, None, 64)), T("s", (None, 64)), T("tok", (None, 1, 13))],
        [T("p", (None, 13)), T("weights", (None, 1, 31)), T("s2", (None, 64))],
        [T("seq", (None, None, 64)), T("s", (None, 64))],
        SOURCE,
    )
    assert (layout.decoder_token, layout.decoder_memory, layout.decoder_states) == (2, 0, (1,))
    assert (layout.decoder_probabilities, layout.decoder_state_outputs) == (0, (2,))
    assert layout.memory_shape == (None, 64)


AMBIGUOUS = (
    [T("tok", (None, 1, 13)), T("h", (None, 13))],
    # logits and probabilities, both 13 wide: which is which cannot be told from shapes
    [T("h_out", (None, 13)), T("logits", (None, 1, 13)), T("probs", (None, 1, 13))],
    [T("h", (None, 13))],
    SOURCE,
)


def test_ambiguous_model_is_refused_saying_what_to_write() -> None:
    with pytest.raises(ManifestError) as info:
        infer_layout(manifest(), *AMBIGUOUS)
    message = str(info.value)
    assert "cannot tell the model's tensors apart" in message
    assert (
        '"roles"' in message and "decoder_outputs" in message and "probs [None, 1, 13]" in message
    )


@pytest.mark.parametrize(
    "outputs",
    [
        ["state", "ignore", "probabilities"],
        {"h_out": "state", "logits": "ignore", "probs": "probabilities"},
    ],
)
def test_roles_by_position_or_by_name(outputs: object) -> None:
    layout = infer_layout(manifest(roles={"decoder_outputs": outputs}), *AMBIGUOUS)
    assert (layout.decoder_probabilities, layout.decoder_state_outputs) == (2, (0,))


@pytest.mark.parametrize(
    ("decoder_inputs", "encoder_outputs", "expected"),
    [
        (
            [T("tok", (None, 1, 12)), T("h", (None, 8))],
            [T("h", (None, 8))],
            "0 inputs could be the token",
        ),
        (
            [T("tok", (None, 1, 13)), T("h", (None, 8))],
            [T("h", (None, 9))],
            "the encoder returns states of shapes [[9]], the decoder takes [[8]]",
        ),
        (
            [T("tok", (None, 1, 13)), T("h", (None, None))],
            [T("h", (None, None))],
            "a state must be fully defined",
        ),
    ],
)
def test_models_that_do_not_fit(
    decoder_inputs: list[T], encoder_outputs: list[T], expected: str
) -> None:
    outputs = [T("p", (None, 13)), *[T("o", t.shape) for t in decoder_inputs[1:]]]
    with pytest.raises(ManifestError) as info:
        infer_layout(manifest(), decoder_inputs, outputs, encoder_outputs, SOURCE)
    assert expected in str(info.value)


def test_source_must_fit_the_manifest() -> None:
    dec = [T("tok", (None, 1, 13)), T("h", (None, 8))]
    out = [T("p", (None, 13)), T("h2", (None, 8))]
    with pytest.raises(ManifestError, match=r"does not fit the manifest's source"):
        infer_layout(manifest(), dec, out, [T("h", (None, 8))], [T("src", (None, None, 21))])
    m = manifest(
        source={
            "encoding": "one_hot",
            "vocabulary": [" ", *"abcdefghijklmnopqrs"],
            "pad_token": " ",
            "length": 30,
        }
    )
    with pytest.raises(
        ManifestError, match="has 31 time steps, the manifest's source.length is 30"
    ):
        infer_layout(m, dec, out, [T("h", (None, 8))], [T("src", (None, 31, 20))])
