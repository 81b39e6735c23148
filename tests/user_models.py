"""Models built the way public Keras material builds them (Keras 3, random weights), each
with its manifest and the tensor order a hand-written decode loop needs.

keras-io's lstm_seq2seq layout, a word-level GRU with attention, SimpleRNN, stacked
LSTMs, a bidirectional encoder with concatenated states, and a decoder that takes
`[memory, state, token]` and returns `[logits, attention weights, state]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SOURCE_CHARS = [" ", *"abcdefghijklmnopqrst"]  # 21, like keras-io's run but smaller
TARGET_CHARS = ["\t", "\n", " ", *"0123456789"]  # 13
SOURCE_WORDS = ["<pad>", "[UNK]", "the", "cat", "sat", "on", "mat", "a", "dog"]
TARGET_WORDS = ["<pad>", "<start>", "<end>", "le", "chat", "chien", "tapis", "un", "sur", "assis"]


@dataclass
class UserModel:
    name: str
    encoder: Any
    decoder: Any
    manifest: dict[str, Any]
    # the tensor order, as a tutorial's decode loop hard-codes it
    encoder_outputs: list[str]
    decoder_inputs: list[str]
    decoder_outputs: list[str]
    training: Any = None
    sources: list[Any] = field(default_factory=list)  # what the tests send


def keras_io_chars(latent: int = 32) -> UserModel:
    """keras-io examples/nlp/lstm_seq2seq.py, exactly: one-hot characters, LSTM."""
    import keras

    s, t = len(SOURCE_CHARS), len(TARGET_CHARS)
    encoder_inputs = keras.Input(shape=(None, s))
    _, state_h, state_c = keras.layers.LSTM(latent, return_state=True)(encoder_inputs)
    decoder_inputs = keras.Input(shape=(None, t))
    decoder_lstm = keras.layers.LSTM(latent, return_sequences=True, return_state=True)
    seq, _, _ = decoder_lstm(decoder_inputs, initial_state=[state_h, state_c])
    dense = keras.layers.Dense(t, activation="softmax")
    training = keras.Model([encoder_inputs, decoder_inputs], dense(seq))
    encoder = keras.Model(encoder_inputs, [state_h, state_c])
    h_in, c_in = keras.Input(shape=(latent,)), keras.Input(shape=(latent,))
    seq2, h2, c2 = decoder_lstm(decoder_inputs, initial_state=[h_in, c_in])
    decoder = keras.Model([decoder_inputs, h_in, c_in], [dense(seq2), h2, c2])
    manifest = {
        "kind": "seq2seq",
        "source": {
            "encoding": "one_hot",
            "vocabulary": SOURCE_CHARS,
            "tokenizer": "char",
            "pad_token": " ",
            "length": 8,
        },
        "target": {"encoding": "one_hot", "vocabulary": TARGET_CHARS, "tokenizer": "char"},
        "start_token": "\t",
        "end_token": "\n",
        "max_steps": 7,
    }
    sources = ["abc", "hello", "tea", "s", "bad cat", "ab", "abcdefgh"]
    return UserModel(
        "chars",
        encoder,
        decoder,
        manifest,
        ["state", "state"],
        ["token", "state", "state"],
        ["probabilities", "state", "state"],
        training,
        sources,
    )


def _words_manifest() -> dict[str, Any]:
    return {
        "kind": "seq2seq",
        "source": {
            "encoding": "index",
            "vocabulary": SOURCE_WORDS,
            "tokenizer": "whitespace",
            "unk_token": "[UNK]",
            "pad_token": "<pad>",
            "length": 6,
        },
        "target": {
            "encoding": "index",
            "vocabulary": TARGET_WORDS,
            "tokenizer": "whitespace",
            "pad_token": "<pad>",
        },
        "start_token": "<start>",
        "end_token": "<end>",
        "max_steps": 6,
    }


WORD_SOURCES = ["the cat sat", "a dog sat on the mat", "the zebra", ["cat", 4, "mat"]]


def gru_attention(units: int = 24) -> UserModel:
    """Embedding + GRU encoder returning its sequence and state; the decoder takes
    [token, encoder_outputs, h] and attends over the encoder outputs."""
    import keras

    length = 6
    source = keras.Input(shape=(length,), dtype="int32")
    x = keras.layers.Embedding(len(SOURCE_WORDS), 16)(source)
    memory, h = keras.layers.GRU(units, return_sequences=True, return_state=True)(x)
    encoder = keras.Model(source, [memory, h])
    token = keras.Input(shape=(None,), dtype="int32")
    memory_in = keras.Input(shape=(length, units))
    h_in = keras.Input(shape=(units,))
    y = keras.layers.Embedding(len(TARGET_WORDS), 16)(token)
    seq, h_out = keras.layers.GRU(units, return_sequences=True, return_state=True)(
        y, initial_state=h_in
    )
    context = keras.layers.Attention()([seq, memory_in])
    joined = keras.layers.Concatenate()([seq, context])
    probs = keras.layers.Dense(len(TARGET_WORDS), activation="softmax")(joined)
    decoder = keras.Model([token, memory_in, h_in], [probs, h_out])
    return UserModel(
        "words",
        encoder,
        decoder,
        _words_manifest(),
        ["memory", "state"],
        ["token", "memory", "state"],
        ["probabilities", "state"],
        sources=WORD_SOURCES,
    )


def reordered_logits(units: int = 20) -> UserModel:
    """The other common pattern: decoder [enc_out, state, token] -> [logits, attention
    weights, state], with logits instead of probabilities (TensorFlow's NMT tutorial)."""
    import keras

    length = 6
    card = len(TARGET_WORDS)
    source = keras.Input(shape=(length,), dtype="int32")
    x = keras.layers.Embedding(len(SOURCE_WORDS), 12)(source)
    memory, h = keras.layers.GRU(units, return_sequences=True, return_state=True)(x)
    encoder = keras.Model(source, [memory, h])
    memory_in = keras.Input(shape=(length, units))
    h_in = keras.Input(shape=(units,))
    token = keras.Input(shape=(None, card))  # one-hot this time
    seq, h_out = keras.layers.GRU(units, return_sequences=True, return_state=True)(
        token, initial_state=h_in
    )
    context, weights = keras.layers.Attention()([seq, memory_in], return_attention_scores=True)
    logits = keras.layers.Dense(card)(keras.layers.Concatenate()([seq, context]))
    decoder = keras.Model([memory_in, h_in, token], [logits, weights, h_out])
    manifest = _words_manifest()
    manifest["target"] = {**manifest["target"], "encoding": "one_hot"}
    manifest["decoder_output"] = "logits"
    return UserModel(
        "reordered",
        encoder,
        decoder,
        manifest,
        ["memory", "state"],
        ["memory", "state", "token"],
        ["logits", "ignore", "state"],
        sources=WORD_SOURCES,
    )


def _one_sided(card: int) -> dict[str, Any]:
    return {
        "kind": "seq2seq",
        "input": {"encoding": "one_hot", "cardinality": card},
        "output_cardinality": card,
        "start_token": 0,
        "end_token": 1,
        "max_steps": 5,
    }


ID_SOURCES = [[3, 4, 5], [9, 2, 2, 7, 8], [6], [3, 3, 3]]


def simple_rnn(units: int = 16, card: int = 10) -> UserModel:
    import keras

    src = keras.Input(shape=(None, card))
    _, h = keras.layers.SimpleRNN(units, return_state=True)(src)
    encoder = keras.Model(src, [h])
    token, h_in = keras.Input(shape=(None, card)), keras.Input(shape=(units,))
    seq, h_out = keras.layers.SimpleRNN(units, return_sequences=True, return_state=True)(
        token, initial_state=h_in
    )
    probs = keras.layers.Dense(card, activation="softmax")(seq)
    decoder = keras.Model([token, h_in], [probs, h_out])
    return UserModel(
        "simple_rnn",
        encoder,
        decoder,
        _one_sided(card),
        ["state"],
        ["token", "state"],
        ["probabilities", "state"],
        sources=ID_SOURCES,
    )


def stacked_lstm(units: int = 16, card: int = 10) -> UserModel:
    """Two LSTM layers each side: four states (h1, c1, h2, c2)."""
    import keras

    src = keras.Input(shape=(None, card))
    seq1, h1, c1 = keras.layers.LSTM(units, return_sequences=True, return_state=True)(src)
    _, h2, c2 = keras.layers.LSTM(units, return_state=True)(seq1)
    encoder = keras.Model(src, [h1, c1, h2, c2])
    token = keras.Input(shape=(None, card))
    ins = [keras.Input(shape=(units,)) for _ in range(4)]
    d1 = keras.layers.LSTM(units, return_sequences=True, return_state=True)
    d2 = keras.layers.LSTM(units, return_sequences=True, return_state=True)
    s1, oh1, oc1 = d1(token, initial_state=ins[:2])
    s2, oh2, oc2 = d2(s1, initial_state=ins[2:])
    probs = keras.layers.Dense(card, activation="softmax")(s2)
    decoder = keras.Model([token, *ins], [probs, oh1, oc1, oh2, oc2])
    return UserModel(
        "stacked",
        encoder,
        decoder,
        _one_sided(card),
        ["state"] * 4,
        ["token", *["state"] * 4],
        ["probabilities", *["state"] * 4],
        sources=ID_SOURCES,
    )


def bidirectional(units: int = 12, card: int = 10) -> UserModel:
    """Bidirectional LSTM encoder; forward and backward states concatenated for a
    decoder twice as wide."""
    import keras

    src = keras.Input(shape=(None, card))
    _, fh, fc, bh, bc = keras.layers.Bidirectional(keras.layers.LSTM(units, return_state=True))(src)
    h = keras.layers.Concatenate()([fh, bh])
    c = keras.layers.Concatenate()([fc, bc])
    encoder = keras.Model(src, [h, c])
    token = keras.Input(shape=(None, card))
    h_in, c_in = keras.Input(shape=(2 * units,)), keras.Input(shape=(2 * units,))
    seq, h_out, c_out = keras.layers.LSTM(2 * units, return_sequences=True, return_state=True)(
        token, initial_state=[h_in, c_in]
    )
    probs = keras.layers.Dense(card, activation="softmax")(seq)
    decoder = keras.Model([token, h_in, c_in], [probs, h_out, c_out])
    return UserModel(
        "bidirectional",
        encoder,
        decoder,
        _one_sided(card),
        ["state", "state"],
        ["token", "state", "state"],
        ["probabilities", "state", "state"],
        sources=ID_SOURCES,
    )


ALL = (keras_io_chars, gru_attention, reordered_logits, simple_rnn, stacked_lstm, bidirectional)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def encode_tokens(ids: list[int], side: dict[str, Any], card: int) -> np.ndarray:
    array = np.asarray([ids], np.int32)
    if side["encoding"] == "one_hot":
        return np.eye(card, dtype=np.float32)[array]
    return array


def tutorial_decode(
    model: UserModel, source_ids: list[int], max_steps: int
) -> tuple[list[int], list[np.ndarray]]:
    """The tutorials' loop, one source at a time: encode once, then call the decoder on
    one token and the states, take the argmax, feed it back; stop at the end token."""
    from service.inference.model.manifest import Manifest

    m = Manifest.model_validate(model.manifest)
    outs = model.encoder(
        encode_tokens(
            source_ids,
            model.manifest.get("source", {"encoding": "one_hot"}),
            m.source.size,
        )
    )
    # all numpy: Keras refuses calls that mix tensors and arrays
    outs = [np.asarray(o) for o in (outs if isinstance(outs, list | tuple) else [outs])]
    memory = [o for o, r in zip(outs, model.encoder_outputs, strict=True) if r == "memory"]
    states = [o for o, r in zip(outs, model.encoder_outputs, strict=True) if r == "state"]
    token, tokens, probabilities = m.start_id, [], []
    target = model.manifest.get("target", {"encoding": "one_hot"})
    for _ in range(max_steps):
        assert token is not None
        x = encode_tokens([token], target, m.target.size)
        feed = {"token": [x], "memory": memory, "state": states}
        taken = {role: 0 for role in feed}
        inputs = []
        for role in model.decoder_inputs:
            inputs.append(feed[role][taken[role]])
            taken[role] += 1
        result = [np.asarray(o) for o in model.decoder(inputs)]
        states = [o for o, r in zip(result, model.decoder_outputs, strict=True) if r == "state"]
        (scores,) = [
            np.asarray(o)
            for o, r in zip(result, model.decoder_outputs, strict=True)
            if r in ("probabilities", "logits")
        ]
        p = scores.reshape(scores.shape[0], -1, scores.shape[-1])[0, -1]
        if "logits" in model.decoder_outputs:
            p = softmax(p)
        token = int(np.argmax(p))
        tokens.append(token)
        probabilities.append(p)
        if token == m.end_id:
            break
    return tokens, probabilities
