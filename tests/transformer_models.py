"""Transformer seq2seq models as keras-io builds them, small, for the tests: the layout of
"English-to-Spanish translation with a sequence-to-sequence Transformer" (custom layers,
tests/models/keras_io_layers.py, shipped with the model as its code file), and that
example's decode loop (the whole trained model re-run on the padded prefix per token)."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LAYERS = Path(__file__).parent / "models" / "keras_io_layers.py"
VOCAB = ["", "[UNK]", "[start]", "[end]", *(f"w{i}" for i in range(12))]
START, END = VOCAB.index("[start]"), VOCAB.index("[end]")
SEQ = 8  # keras-io's sequence_length (20): source length and the decoder's window
EXAMPLE = "w1 w2 w3"  # what `check` decodes after the keras-io import (model.json's example)


@dataclass
class TransformerModel:
    name: str
    encoder: Any
    decoder: Any
    transformer: Any  # the trained model: [encoder_inputs, decoder_inputs] -> probabilities
    manifest: dict[str, Any]
    code: list[Path]


def manifest(code: list[str]) -> dict[str, Any]:
    side = {"encoding": "index", "vocabulary": VOCAB, "tokenizer": "whitespace"}
    return {
        "kind": "seq2seq",
        "decoder_kind": "transformer",
        "code": code,
        "description": "keras-io's Transformer layout, small, untrained",
        "source": {**side, "unk_token": "[UNK]", "pad_token": "", "length": SEQ},
        "target": {**side, "unk_token": "[UNK]"},
        "start_token": "[start]",
        "end_token": "[end]",
        "max_steps": SEQ,
    }


def keras_io(seed: int = 5) -> TransformerModel:
    """keras-io's three models, built as the example builds them (embed 16, latent 32,
    2 heads), with a sharpened output layer so that argmaxes are not near-ties."""
    import keras
    from keras import layers

    from tests.models import keras_io_layers as custom

    keras.utils.set_random_seed(seed)
    v = len(VOCAB)
    encoder_inputs = keras.Input(shape=(None,), dtype="int64", name="encoder_inputs")
    x = custom.PositionalEmbedding(SEQ, v, 16)(encoder_inputs)
    encoder_outputs = custom.TransformerEncoder(16, 32, 2)(x)
    encoder = keras.Model(encoder_inputs, encoder_outputs)
    decoder_inputs = keras.Input(shape=(None,), dtype="int64", name="decoder_inputs")
    encoded_seq_inputs = keras.Input(shape=(None, 16), name="decoder_state_inputs")
    x = custom.PositionalEmbedding(SEQ, v, 16)(decoder_inputs)
    x = custom.TransformerDecoder(16, 32, 2)(x, encoded_seq_inputs)
    x = layers.Dropout(0.5)(x)
    dense = layers.Dense(v, activation="softmax")
    decoder = keras.Model([decoder_inputs, encoded_seq_inputs], dense(x))
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 4.0, bias])
    with warnings.catch_warnings():  # Keras warns that the nested decoder drops the mask
        warnings.simplefilter("ignore", UserWarning)
        transformer = keras.Model(
            [encoder_inputs, decoder_inputs], decoder([decoder_inputs, encoder_outputs])
        )
    return TransformerModel(
        "keras_io_transformer", encoder, decoder, transformer, manifest(["layers.py"]), [LAYERS]
    )


HUB_VOCAB = ["[PAD]", "[UNK]", "[START]", "[END]", *(f"w{i}" for i in range(12))]


def keras_hub(seed: int = 6) -> TransformerModel:
    """keras-io's "English-to-Spanish translation with KerasHub" layout: KerasHub's
    TokenAndPositionEmbedding (here with mask_zero=True on both sides), TransformerEncoder
    and TransformerDecoder(decoder_sequence=, encoder_sequence=), Dropout, Dense softmax;
    small (embed 16, intermediate 32, 2 heads), two decoder layers."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    v = len(HUB_VOCAB)
    encoder_inputs = keras.Input(shape=(None,), name="encoder_inputs")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=v, sequence_length=SEQ, embedding_dim=16, mask_zero=True
    )(encoder_inputs)
    encoder_outputs = keras_hub.layers.TransformerEncoder(intermediate_dim=32, num_heads=2)(
        inputs=x
    )
    encoder = keras.Model(encoder_inputs, encoder_outputs)
    decoder_inputs = keras.Input(shape=(None,), name="decoder_inputs")
    encoded_seq_inputs = keras.Input(shape=(None, 16), name="decoder_state_inputs")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size=v, sequence_length=SEQ, embedding_dim=16, mask_zero=True
    )(decoder_inputs)
    for _ in range(2):
        x = keras_hub.layers.TransformerDecoder(intermediate_dim=32, num_heads=2)(
            decoder_sequence=x, encoder_sequence=encoded_seq_inputs
        )
    x = keras.layers.Dropout(0.5)(x)
    dense = keras.layers.Dense(v, activation="softmax")
    decoder = keras.Model([decoder_inputs, encoded_seq_inputs], dense(x))
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 4.0, bias])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        transformer = keras.Model(
            [encoder_inputs, decoder_inputs], decoder([decoder_inputs, encoder_outputs])
        )
    side = {"encoding": "index", "vocabulary": HUB_VOCAB, "tokenizer": "whitespace"}
    manifest = {
        "kind": "seq2seq",
        "decoder_kind": "transformer",
        "description": "keras-io's KerasHub Transformer layout, small, untrained",
        "source": {**side, "unk_token": "[UNK]", "pad_token": "[PAD]", "length": SEQ},
        "target": {**side, "unk_token": "[UNK]"},
        "start_token": "[START]",
        "end_token": "[END]",
        "max_steps": SEQ,
    }
    return TransformerModel("keras_hub_transformer", encoder, decoder, transformer, manifest, [])


def keras_hub_chain(seed: int = 7) -> TransformerModel:
    """The KerasHub layout built as one training model, its decoder a chain of layers
    (no nested decoder model): saved whole, for `service import` to split."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    v = len(HUB_VOCAB)

    def embedding() -> Any:
        return keras_hub.layers.TokenAndPositionEmbedding(
            vocabulary_size=v, sequence_length=SEQ, embedding_dim=16, mask_zero=True
        )

    encoder_inputs = keras.Input(shape=(None,), name="encoder_inputs")
    encoder_outputs = keras_hub.layers.TransformerEncoder(intermediate_dim=32, num_heads=2)(
        inputs=embedding()(encoder_inputs)
    )
    decoder_inputs = keras.Input(shape=(None,), name="decoder_inputs")
    x = embedding()(decoder_inputs)
    for _ in range(2):
        x = keras_hub.layers.TransformerDecoder(intermediate_dim=32, num_heads=2)(
            decoder_sequence=x, encoder_sequence=encoder_outputs
        )
    dense = keras.layers.Dense(v, activation="softmax")
    transformer = keras.Model([encoder_inputs, decoder_inputs], dense(x))
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel * 4.0, bias])
    return TransformerModel("keras_hub_chain", None, None, transformer, {}, [])


def write(store: Path, model: TransformerModel) -> Path:
    directory = store / model.name / "1"
    directory.mkdir(parents=True)
    model.encoder.save(directory / "encoder.keras")
    model.decoder.save(directory / "decoder.keras")
    for path in model.code:
        shutil.copy(path, directory / "layers.py")
    (directory / "model.json").write_text(json.dumps(model.manifest))
    return directory


def padded(ids: list[int], length: int) -> np.ndarray:
    return np.asarray([ids + [0] * (length - len(ids))], np.int64)


def keras_io_decode(model: TransformerModel, source: list[int]) -> tuple[list[int], np.ndarray]:
    """keras-io's decode_sequence on token ids: the source padded to SEQ; per step the
    whole trained model on "[start] ..." padded to SEQ + 1 and cut to SEQ, argmax at i.
    -> the tokens after [start] (with [end] if reached) and each step's probabilities.
    (The KerasHub example's greedy sampler does the same: the whole model on the prompt
    padded to its length, the logits at index - 1; [START] and [END] are ids 2 and 3 in
    both vocabularies here.)"""
    decoded, probabilities = [START], []
    for i in range(SEQ):
        target = padded(decoded, SEQ + 1)[:, :-1]
        predictions = np.asarray(model.transformer([padded(source, SEQ), target]))
        probabilities.append(predictions[0, i])
        token = int(np.argmax(predictions[0, i, :]))
        decoded.append(token)
        if token == END:
            break
    return decoded[1:], np.stack(probabilities)


def weights_hash(model: TransformerModel) -> str:
    digest = hashlib.sha256()
    for weights in model.transformer.get_weights():
        digest.update(np.asarray(weights).tobytes())
    return digest.hexdigest()


def main(out: Path) -> None:
    """`python -m tests.transformer_models OUT`: OUT/store with the models, OUT/weights.json
    their hashes (a test builds the same models, seeded, and compares), OUT/import.json
    what `service import` printed for the two training models saved whole."""
    hashes = {}
    for model in (keras_io(), keras_hub()):
        write(out / "store", model)
        hashes[model.name] = weights_hash(model)
    chain = keras_hub_chain()
    hashes[chain.name] = weights_hash(chain)
    (out / "weights.json").write_text(json.dumps(hashes))
    keras_io_options = ["--code", str(LAYERS), "--start", "[start]", "--end", "[end]"]
    keras_io_options += ["--example", EXAMPLE]
    hub_options = ["--start", "[START]", "--end", "[END]", "--pad", "[PAD]"]
    printed = {
        "keras_io_imported": import_whole(
            keras_io(), out, "keras_io_imported", VOCAB, [*keras_io_options, "--pad", ""]
        ),
        "keras_hub_chain_imported": import_whole(
            chain, out, "keras_hub_chain_imported", HUB_VOCAB, hub_options
        ),
    }
    (out / "import.json").write_text(json.dumps(printed))


def import_whole(
    model: TransformerModel, out: Path, name: str, vocabulary: list[str], options: list[str]
) -> dict[str, Any]:
    """`model`'s trained `transformer` saved whole and split by `service import` into
    OUT/store/NAME/1: what the import printed."""
    import subprocess
    import sys

    training = out / f"{name}.keras"
    model.transformer.save(training)
    words = out / f"{name}.vocabulary.json"
    words.write_text(json.dumps(vocabulary))
    argv = [sys.executable, "-m", "service", "import", str(training)]
    argv += ["--out", str(out / "store" / name / "1"), *options]
    argv += ["--source-vocab", str(words), "--target-vocab", str(words)]
    argv += ["--tokenizer", "whitespace", "--length", str(SEQ), "--max-steps", str(SEQ)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr[-3000:]}


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]))
