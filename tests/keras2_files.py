"""Build real Keras 2 (`tf_keras`) model files, as tf.keras <= 2.15 and tf_keras write them.

Run in its own process (`python tests/keras2_files.py OUTDIR`): `tf_keras` and Keras 3
should not share a process with the code under test. Writes into OUTDIR, for each model
NAME, `NAME.h5` (HDF5) and, for all but the two joined training models, `NAME/` (a
SavedModel directory: Keras 2's `model.save(dir)`); `predictions.npz` holding every
model's fixed inputs (`NAME.in.I`) and its own `predict` outputs (`NAME.out.I`), in the
model's input and output order; and `time_major.h5`, which Keras 3 cannot rebuild. Random weights,
fixed seeds.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tf_keras  # noqa: E402
from tf_keras import layers  # noqa: E402

SEED = 7


def define_models(n_input: int, n_output: int, n_units: int) -> tuple[Any, Any, Any]:
    """The seed tutorial's function, as published: unnamed layers, one-hot inputs."""
    Input, LSTM, Dense, Model = layers.Input, layers.LSTM, layers.Dense, tf_keras.Model
    # define training encoder
    encoder_inputs = Input(shape=(None, n_input))
    encoder = LSTM(n_units, return_state=True)
    encoder_outputs, state_h, state_c = encoder(encoder_inputs)
    encoder_states = [state_h, state_c]
    # define training decoder
    decoder_inputs = Input(shape=(None, n_output))
    decoder_lstm = LSTM(n_units, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
    decoder_dense = Dense(n_output, activation="softmax")
    decoder_outputs = decoder_dense(decoder_outputs)
    model = Model([encoder_inputs, decoder_inputs], decoder_outputs)
    # define inference encoder
    encoder_model = Model(encoder_inputs, encoder_states)
    # define inference decoder
    decoder_state_input_h = Input(shape=(n_units,))
    decoder_state_input_c = Input(shape=(n_units,))
    decoder_states_inputs = [decoder_state_input_h, decoder_state_input_c]
    decoder_outputs, state_h, state_c = decoder_lstm(
        decoder_inputs, initial_state=decoder_states_inputs
    )
    decoder_states = [state_h, state_c]
    decoder_outputs = decoder_dense(decoder_outputs)
    decoder_model = Model(
        [decoder_inputs] + decoder_states_inputs, [decoder_outputs] + decoder_states
    )
    return model, encoder_model, decoder_model


def attention_models(
    source_vocab: int = 30, target_vocab: int = 40, embed: int = 16, units: int = 32
) -> tuple[Any, Any, Any]:
    """Word-level GRU seq2seq with dot-product attention, split for inference. Inputs
    are deliberately named out of alphabetical order (token, encoder_outputs, h)."""
    source = layers.Input((None,), name="source")
    enc_seq, enc_h = layers.GRU(units, return_sequences=True, return_state=True, name="enc_gru")(
        layers.Embedding(source_vocab, embed, mask_zero=True, name="enc_embed")(source)
    )
    dec_embed = layers.Embedding(target_vocab, embed, name="dec_embed")
    dec_gru = layers.GRU(units, return_sequences=True, return_state=True, name="dec_gru")
    attention = layers.Attention(name="attention")
    concat = layers.Concatenate(name="concat")
    dense = layers.Dense(target_vocab, activation="softmax", name="probs")

    def decode(token: Any, enc_out: Any, h: Any) -> tuple[Any, Any]:
        seq, h_out = dec_gru(dec_embed(token), initial_state=h)
        context = attention([seq, enc_out])
        return dense(concat([seq, context])), h_out

    shifted = layers.Input((None,), name="shifted_target")
    training = tf_keras.Model([source, shifted], decode(shifted, enc_seq, enc_h)[0])
    encoder = tf_keras.Model(source, [enc_seq, enc_h], name="attention_encoder")
    token = layers.Input((1,), name="token")
    enc_out = layers.Input((None, units), name="encoder_outputs")
    h = layers.Input((units,), name="h")
    probs, h_out = decode(token, enc_out, h)
    decoder = tf_keras.Model([token, enc_out, h], [probs, h_out], name="attention_decoder")
    return training, encoder, decoder


def bidirectional_model(features: int = 8, units: int = 12) -> Any:
    """A bidirectional LSTM started from given states, returning its output and states
    (fh, fc, bh, bc concatenated to a decoder-wide h and c), then a SimpleRNN and a
    TimeDistributed Dense: the other recurrent configs and call nodes Keras 2 writes."""
    source = layers.Input((None, features), name="source")
    h0 = layers.Input((units,), name="h0")
    c0 = layers.Input((units,), name="c0")
    seq, fh, fc, bh, bc = layers.Bidirectional(
        layers.LSTM(units, return_sequences=True, return_state=True), name="bilstm"
    )(source, initial_state=[h0, c0, c0, h0])
    h = layers.Concatenate(name="h")([fh, bh])
    c = layers.Concatenate(name="c")([fc, bc])
    rnn = layers.SimpleRNN(units, return_sequences=True, name="rnn")(seq)
    dense = layers.TimeDistributed(layers.Dense(3), name="per_step")(rnn)
    return tf_keras.Model([source, h0, c0], [dense, h, c], name="bidirectional")


def sequential_model() -> Any:
    """Tokenizer + pad_sequences style: the input shape lives on the Embedding
    (`input_length`), as Keras 2 Sequential models keep it."""
    return tf_keras.Sequential(
        [
            layers.Embedding(20, 8, input_length=5),
            layers.LSTM(6),
            layers.Dense(3, activation="softmax"),
        ]
    )


def time_major_model() -> Any:
    """An LSTM over (time, batch, features): Keras 3 has no time-major recurrent layers."""
    x = layers.Input((2, 3), name="x")
    return tf_keras.Model(x, layers.LSTM(4, time_major=True)(x))


def lambda_model() -> Any:
    """A Lambda layer: its Python code is in the .h5 file, which safe mode refuses."""
    x = layers.Input((4,), name="x")
    return tf_keras.Model(x, layers.Dense(2)(layers.Lambda(lambda t: t * 2.0)(x)))


def save(
    out: Path,
    name: str,
    model: Any,
    inputs: list[np.ndarray],
    arrays: dict[str, Any],
    saved_model: bool = True,
) -> None:
    model.save(out / f"{name}.h5")
    if saved_model:  # a few seconds each
        model.save(out / name)  # Keras 2's default: a SavedModel directory
    outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    for i, array in enumerate(inputs):
        arrays[f"{name}.in.{i}"] = array
    for i, array in enumerate(outputs):
        arrays[f"{name}.out.{i}"] = array


def tutorial_decode(
    encoder: Any, decoder: Any, source: np.ndarray, steps: int, card: int | None, end: int | None
) -> tuple[list[int], list[np.ndarray]]:
    """The seed tutorial's predict_sequence with Keras 2, one source at a time (direct
    calls instead of predict() per step: the same numbers, faster). `card`: one-hot
    tokens of that cardinality, else ids. Attention decoders take [token, memory, h]."""
    outs = [np.asarray(o) for o in encoder(source[None])]
    memory, states = (outs[:1], outs[1:]) if card is None else ([], outs)
    token, tokens, probabilities = 0 if card is not None else 1, [], []
    for _ in range(steps):
        x = np.eye(card, dtype=np.float32)[[[token]]] if card else np.asarray([[token]], np.float32)
        result = [np.asarray(o) for o in decoder([x, *memory, *states])]
        p, states = result[0][0, -1], result[1:]
        token = int(np.argmax(p))
        tokens.append(token)
        probabilities.append(p)
        if token == end:
            break
    return tokens, probabilities


def save_decodes(
    arrays: dict[str, Any],
    name: str,
    encoder: Any,
    decoder: Any,
    sources: list[np.ndarray],
    steps: int,
    card: int | None,
    end: int | None,
) -> None:
    for i, source in enumerate(sources):
        tokens, probs = tutorial_decode(encoder, decoder, source, steps, card, end)
        arrays[f"{name}.decode.{i}.source"] = source
        arrays[f"{name}.decode.{i}.tokens"] = np.asarray(tokens, np.int64)
        arrays[f"{name}.decode.{i}.probs"] = np.asarray(probs, np.float32)


def main(out: Path) -> None:
    tf_keras.utils.set_random_seed(SEED)
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {}
    eye = np.eye(51, dtype=np.float32)

    training, encoder, decoder = define_models(n_input=51, n_output=51, n_units=128)
    source = eye[rng.integers(1, 51, size=(4, 6))]
    target = eye[rng.integers(0, 51, size=(4, 3))]
    save(out, "tutorial_training", training, [source, target], arrays, saved_model=False)
    save(out, "tutorial_encoder", encoder, [source], arrays)
    states = [rng.normal(size=(4, 128)).astype(np.float32) for _ in range(2)]
    save(out, "tutorial_decoder", decoder, [target[:, :1], *states], arrays)
    sources = [eye[rng.integers(1, 51, size=6)] for _ in range(4)]
    save_decodes(arrays, "tutorial", encoder, decoder, sources, 3, 51, None)

    training, encoder, decoder = attention_models()
    # right-padded with 0 (masked in the encoder)
    words = rng.integers(1, 30, size=(4, 7)).astype(np.float32)
    words[1, 5:] = 0
    words[3, 3:] = 0
    shifted = rng.integers(1, 40, size=(4, 5)).astype(np.float32)
    save(out, "attention_training", training, [words, shifted], arrays, saved_model=False)
    save(out, "attention_encoder", encoder, [words], arrays)
    enc_out = rng.normal(size=(4, 7, 32)).astype(np.float32)
    h = rng.normal(size=(4, 32)).astype(np.float32)
    save(out, "attention_decoder", decoder, [shifted[:, :1], enc_out, h], arrays)
    sources = [rng.integers(3, 30, size=n).astype(np.float32) for n in (4, 7, 7, 2)]
    save_decodes(arrays, "attention", encoder, decoder, sources, 5, None, 2)

    features = rng.normal(size=(4, 5, 8)).astype(np.float32)
    h0, c0 = (rng.normal(size=(4, 12)).astype(np.float32) for _ in range(2))
    save(out, "bidirectional", bidirectional_model(), [features, h0, c0], arrays)
    padded = rng.integers(0, 20, size=(4, 5)).astype(np.float32)
    save(out, "sequential", sequential_model(), [padded], arrays)
    save(out, "lambda", lambda_model(), [rng.normal(size=(4, 4)).astype(np.float32)], arrays)

    time_major_model().save(out / "time_major.h5")  # refused: nothing to predict
    np.savez(out / "predictions.npz", **arrays)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
