"""Splitting a training model into inference encoder and decoder by following its graph.

Small in-test models (source vocabulary 21, target 13, latent 32) in the layouts users bring.
Each split is checked three ways: the training model run teacher-forced against the split
stepped one decoder input at a time; the split against the inference models written by hand
the way keras-io's lstm_seq2seq example does (direct model calls, no predict); and the split
saved to `.keras` files and loaded back on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from keras import layers

from service.tools.split import SplitError, split_training_model, teacher_forced_difference
from tests.floats import ATOL, assert_close

pytestmark = pytest.mark.integration

SRC, TGT, LATENT = 21, 13, 32
BATCH, SRC_STEPS, TGT_STEPS = 4, 7, 5
Models = tuple[keras.Model, keras.Model]


def one_hot(rng: np.random.Generator, card: int, steps: int) -> np.ndarray:
    return np.eye(card, dtype="float32")[rng.integers(0, card, (BATCH, steps))]


def indices(rng: np.random.Generator, card: int, steps: int) -> np.ndarray:
    return rng.integers(0, card, (BATCH, steps)).astype("int32")


def numpy_list(outputs: Any) -> list[np.ndarray]:
    listed = outputs if isinstance(outputs, list | tuple) else [outputs]
    return [keras.ops.convert_to_numpy(x) for x in listed]


def stepped(models: Models, sources: np.ndarray, decoder_inputs: np.ndarray) -> list[Any]:
    """Encode once, then one decoder step per decoder input, carrying the states."""
    encoder, decoder = models
    states = numpy_list(encoder(sources))
    trace: list[Any] = [states]
    for t in range(decoder_inputs.shape[1]):
        probabilities, *states = numpy_list(decoder([decoder_inputs[:, t : t + 1], *states]))
        trace.append([probabilities, *states])
    return trace


def state_inputs(*widths: int) -> list[Any]:
    return [keras.Input((width,)) for width in widths]


# -- layouts: (training model, inference models written by hand, source, decoder input) -----


def keras_io(tmp_path: Path, rng: np.random.Generator) -> keras.Model:
    """keras-io lstm_seq2seq.py, trained a little, saved and loaded back as users have it."""
    encoder_inputs = keras.Input(shape=(None, SRC))
    encoder = layers.LSTM(LATENT, return_state=True)
    _, state_h, state_c = encoder(encoder_inputs)
    decoder_inputs = keras.Input(shape=(None, TGT))
    decoder_lstm = layers.LSTM(LATENT, return_sequences=True, return_state=True)
    outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    outputs = layers.Dense(TGT, activation="softmax")(outputs)
    model = keras.Model([encoder_inputs, decoder_inputs], outputs)
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    x, y = one_hot(rng, SRC, SRC_STEPS), one_hot(rng, TGT, TGT_STEPS)
    model.fit([np.repeat(x, 8, 0), np.repeat(y, 8, 0)], np.repeat(y, 8, 0), epochs=1, verbose=0)
    model.save(tmp_path / "s2s_model.keras")
    return keras.saving.load_model(tmp_path / "s2s_model.keras", compile=False)


def keras_io_by_hand(model: keras.Model) -> Models:
    """The example's own rebuild, by layer index."""
    _, state_h_enc, state_c_enc = model.layers[2].output
    encoder_model = keras.Model(model.input[0], [state_h_enc, state_c_enc])
    decoder_states_inputs = state_inputs(LATENT, LATENT)
    decoder_outputs, state_h_dec, state_c_dec = model.layers[3](
        model.input[1], initial_state=decoder_states_inputs
    )
    decoder_outputs = model.layers[4](decoder_outputs)
    decoder_model = keras.Model(
        [model.input[1], *decoder_states_inputs], [decoder_outputs, state_h_dec, state_c_dec]
    )
    return encoder_model, decoder_model


def gru_embedding() -> keras.Model:
    """GRU (one state), index inputs through Embeddings, inputs in [decoder input, source]
    order, a TimeDistributed Dense on the output."""
    source = keras.Input((None,), dtype="int32")
    target = keras.Input((None,), dtype="int32")
    _, h = layers.GRU(LATENT, return_state=True, name="enc")(layers.Embedding(SRC, 8)(source))
    embedded = layers.Embedding(TGT, 8, name="dec_embedding")(target)
    seq, _ = layers.GRU(LATENT, return_sequences=True, return_state=True, name="dec")(
        embedded, initial_state=h
    )
    dense = layers.TimeDistributed(layers.Dense(TGT, activation="softmax"), name="out")
    return keras.Model([target, source], dense(seq))


def gru_embedding_by_hand(model: keras.Model) -> Models:
    _, h = model.get_layer("enc").output
    token, (state,) = keras.Input((None,), dtype="int32"), state_inputs(LATENT)
    seq, h_out = model.get_layer("dec")(
        model.get_layer("dec_embedding")(token), initial_state=[state]
    )
    return keras.Model(model.inputs[1], h), keras.Model(
        [token, state], [model.get_layer("out")(seq), h_out]
    )


def bidirectional() -> keras.Model:
    """Bidirectional LSTM encoder whose states are concatenated for a twice-as-wide decoder."""
    source, target = keras.Input((None, SRC)), keras.Input((None, TGT))
    encoder = layers.Bidirectional(layers.LSTM(LATENT // 2, return_state=True), name="enc")
    _, fh, fc, bh, bc = encoder(source)
    h = layers.Concatenate(name="h")([fh, bh])
    c = layers.Concatenate(name="c")([fc, bc])
    seq, _, _ = layers.LSTM(LATENT, return_sequences=True, return_state=True, name="dec")(
        target, initial_state=[h, c]
    )
    return keras.Model([source, target], layers.Dense(TGT, activation="softmax", name="out")(seq))


def bidirectional_by_hand(model: keras.Model) -> Models:
    encoder = keras.Model(
        model.inputs[0], [model.get_layer("h").output, model.get_layer("c").output]
    )
    token, states = keras.Input((None, TGT)), state_inputs(LATENT, LATENT)
    seq, h, c = model.get_layer("dec")(token, initial_state=states)
    return encoder, keras.Model([token, *states], [model.get_layer("out")(seq), h, c])


def stacked() -> keras.Model:
    """Two-layer encoder and decoder, each decoder layer started from its encoder layer's
    states; a two-layer TimeDistributed output path."""
    source, target = keras.Input((None, SRC)), keras.Input((None, TGT))
    seq, h1, c1 = layers.LSTM(LATENT, return_sequences=True, return_state=True, name="enc1")(source)
    _, h2, c2 = layers.LSTM(LATENT, return_state=True, name="enc2")(seq)
    dec1 = layers.LSTM(LATENT, return_sequences=True, return_state=True, name="dec1")
    dec2 = layers.LSTM(LATENT, return_sequences=True, return_state=True, name="dec2")
    seq, _, _ = dec1(target, initial_state=[h1, c1])
    seq, _, _ = dec2(seq, initial_state=[h2, c2])
    hidden = layers.TimeDistributed(layers.Dense(16, activation="relu"), name="hidden")(seq)
    out = layers.TimeDistributed(layers.Dense(TGT, activation="softmax"), name="out")(hidden)
    return keras.Model([source, target], out)


def stacked_by_hand(model: keras.Model) -> Models:
    (_, h1, c1), (_, h2, c2) = model.get_layer("enc1").output, model.get_layer("enc2").output
    encoder = keras.Model(model.inputs[0], [h1, c1, h2, c2])
    token, states = keras.Input((None, TGT)), state_inputs(*[LATENT] * 4)
    seq, h1, c1 = model.get_layer("dec1")(token, initial_state=states[:2])
    seq, h2, c2 = model.get_layer("dec2")(seq, initial_state=states[2:])
    out = model.get_layer("out")(model.get_layer("hidden")(seq))
    return encoder, keras.Model([token, *states], [out, h1, c1, h2, c2])


def simple_rnn() -> keras.Model:
    source, target = keras.Input((None, SRC)), keras.Input((None, TGT))
    _, h = layers.SimpleRNN(LATENT, return_state=True, name="enc")(source)
    seq, _ = layers.SimpleRNN(LATENT, return_sequences=True, return_state=True, name="dec")(
        target, initial_state=[h]
    )
    return keras.Model([source, target], layers.Dense(TGT, activation="softmax", name="out")(seq))


def simple_rnn_by_hand(model: keras.Model) -> Models:
    _, h = model.get_layer("enc").output
    token, (state,) = keras.Input((None, TGT)), state_inputs(LATENT)
    seq, h_out = model.get_layer("dec")(token, initial_state=[state])
    return keras.Model(model.inputs[0], h), keras.Model(
        [token, state], [model.get_layer("out")(seq), h_out]
    )


Layout = tuple[Callable[[], keras.Model], Callable[[keras.Model], Models], bool]
LAYOUTS: dict[str, Layout] = {
    "gru_embedding": (gru_embedding, gru_embedding_by_hand, False),
    "bidirectional": (bidirectional, bidirectional_by_hand, True),
    "stacked": (stacked, stacked_by_hand, True),
    "simple_rnn": (simple_rnn, simple_rnn_by_hand, True),
}


def check_split(
    model: keras.Model,
    by_hand: Models,
    sources: np.ndarray,
    decoder_inputs: np.ndarray,
    tmp_path: Path,
) -> None:
    encoder, decoder = split_training_model(model)
    assert {id(w) for w in encoder.weights + decoder.weights} <= {id(w) for w in model.weights}
    assert teacher_forced_difference(model, encoder, decoder, sources, decoder_inputs) <= ATOL

    ours, theirs = (
        stepped((encoder, decoder), sources, decoder_inputs),
        stepped(by_hand, sources, decoder_inputs),
    )
    for step, (got, want) in enumerate(zip(ours, theirs, strict=True)):
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"step {step} output {i}")

    keras.saving.save_model(encoder, tmp_path / "encoder.keras")
    keras.saving.save_model(decoder, tmp_path / "decoder.keras")
    loaded = (
        keras.saving.load_model(tmp_path / "encoder.keras"),
        keras.saving.load_model(tmp_path / "decoder.keras"),
    )
    for step, (got, want) in enumerate(
        zip(stepped(loaded, sources, decoder_inputs), ours, strict=True)
    ):
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"loaded, step {step} output {i}")


def test_keras_io_layout_loaded_from_file(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    model = keras_io(tmp_path, rng)
    by_hand = keras_io_by_hand(model)
    sources, decoder_inputs = one_hot(rng, SRC, SRC_STEPS), one_hot(rng, TGT, TGT_STEPS)
    check_split(model, by_hand, sources, decoder_inputs, tmp_path)
    encoder, decoder = split_training_model(model)  # again: the layers now have more nodes
    assert teacher_forced_difference(model, encoder, decoder, sources, decoder_inputs) <= ATOL
    shapes = [(None, None, TGT), (None, LATENT), (None, LATENT)]
    assert [tuple(x.shape) for x in decoder.inputs] == shapes


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layout(name: str, tmp_path: Path) -> None:
    build, by_hand, is_one_hot = LAYOUTS[name]
    keras.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    model = build()
    models_by_hand = by_hand(model)
    encode = one_hot if is_one_hot else indices
    sources, decoder_inputs = encode(rng, SRC, SRC_STEPS), encode(rng, TGT, TGT_STEPS)
    check_split(model, models_by_hand, sources, decoder_inputs, tmp_path)


def test_decoder_without_return_state_steps_the_same_cell() -> None:
    """The 2017 keras blog layout: the decoder LSTM has no return_state; the split decoder
    runs an RNN around the same cell."""
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    source, target = keras.Input((None, SRC)), keras.Input((None, TGT))
    _, h, c = layers.LSTM(LATENT, return_state=True)(source)
    seq = layers.LSTM(LATENT, return_sequences=True, name="dec")(target, initial_state=[h, c])
    model = keras.Model([source, target], layers.Dense(TGT, activation="softmax")(seq))
    encoder, decoder = split_training_model(model)
    assert len(decoder.outputs) == 3
    assert any(getattr(x, "cell", None) is model.get_layer("dec").cell for x in decoder.layers)
    sources, decoder_inputs = one_hot(rng, SRC, SRC_STEPS), one_hot(rng, TGT, TGT_STEPS)
    assert teacher_forced_difference(model, encoder, decoder, sources, decoder_inputs) <= ATOL


# -- refusals -------------------------------------------------------------------------------


def test_refuses_a_single_input_model() -> None:
    source = keras.Input((None, SRC))
    model = keras.Model(source, layers.Dense(TGT)(layers.LSTM(LATENT)(source)))
    with pytest.raises(SplitError, match=r"it has 1 input\(s\), not two") as caught:
        split_training_model(model)
    assert "expected a functional model [source, decoder_input]" in str(caught.value)


def test_refuses_recurrent_layers_not_started_from_each_other() -> None:
    a, b = keras.Input((None, SRC)), keras.Input((None, TGT))
    joined = layers.Concatenate()([layers.LSTM(LATENT)(a), layers.LSTM(LATENT)(b)])
    model = keras.Model([a, b], layers.Dense(TGT, activation="softmax")(joined))
    with pytest.raises(SplitError, match="no recurrent layer is started from another"):
        split_training_model(model)


def test_refuses_attention_over_encoder_outputs() -> None:
    source, target = keras.Input((None, SRC)), keras.Input((None, TGT))
    memory, h, c = layers.LSTM(LATENT, return_sequences=True, return_state=True)(source)
    seq = layers.LSTM(LATENT, return_sequences=True)(target, initial_state=[h, c])
    context = layers.Attention(name="attention")([seq, memory])
    out = layers.Dense(TGT, activation="softmax")(layers.Concatenate()([seq, context]))
    with pytest.raises(SplitError, match=r"'attention'.*computed from the source alone"):
        split_training_model(keras.Model([source, target], out))


def test_refuses_a_decoder_final_state_feeding_the_output() -> None:
    source, target = keras.Input((None, SRC)), keras.Input((None, TGT))
    _, h = layers.GRU(LATENT, return_state=True)(source)
    seq, last = layers.GRU(LATENT, return_sequences=True, return_state=True, name="dec")(
        target, initial_state=h
    )
    out = layers.Dense(TGT)(layers.Add()([seq, layers.RepeatVector(TGT_STEPS)(last)]))
    with pytest.raises(SplitError, match="uses the final state of decoder recurrent layer 'dec'"):
        split_training_model(keras.Model([source, target], out))
