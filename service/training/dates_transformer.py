"""Problem C again with a Transformer: dates in many human formats -> ISO 8601, built
from KerasHub layers as keras-io's "English-to-Spanish translation with KerasHub" builds
its model (TokenAndPositionEmbedding, TransformerEncoder, TransformerDecoder, Dense),
characters as index tokens (0 pads the source and is masked). Evaluated by the service's
own compiled decoding (compiled/loader.build_model: cached mode), on fresh dates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from service.training.basics import environment, save_models, seed_everything
from service.training.date_text import (
    END,
    SOURCE_LENGTH,
    SOURCE_VOCABULARY,
    START,
    TARGET_STEPS,
    TARGET_VOCABULARY,
    sample_dates,
)
from service.training.dates import EVAL_SEED_OFFSET, EXAMPLE, fit_on_dates, fresh_pairs

PAD = "[PAD]"
SOURCES = (PAD, *SOURCE_VOCABULARY)  # the date texts' space is a character, not padding
TARGETS = (PAD, *TARGET_VOCABULARY)
DESCRIPTION = (
    "Dates in many human formats -> ISO 8601 (character level, KerasHub Transformer "
    "encoder and decoder, decoded with a key/value cache)."
)


def source_ids(texts: list[str]) -> np.ndarray:
    index = {ch: i for i, ch in enumerate(SOURCES)}
    ids = np.zeros((len(texts), SOURCE_LENGTH), np.int32)
    for row, text in enumerate(texts):
        ids[row, : len(text)] = [index[ch] for ch in text]
    return ids


def target_ids(isos: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(decoder input: [start] + the target shifted right, target: the ISO date + end)."""
    index = {ch: i for i, ch in enumerate(TARGETS)}
    targets = np.asarray([[index[ch] for ch in iso + END] for iso in isos], np.int32)
    start = np.full((len(isos), 1), index[START], np.int32)
    return np.concatenate([start, targets[:, :-1]], axis=1), targets


def build(dim: int = 64, heads: int = 4, intermediate: int = 128) -> tuple[Any, Any, Any]:
    import keras
    import keras_hub

    encoder_inputs = keras.Input(shape=(None,), dtype="int32", name="encoder_inputs")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        len(SOURCES), SOURCE_LENGTH, dim, mask_zero=True
    )(encoder_inputs)
    memory = keras_hub.layers.TransformerEncoder(intermediate, heads)(inputs=x)
    encoder = keras.Model(encoder_inputs, memory, name="encoder")
    decoder_inputs = keras.Input(shape=(None,), dtype="int32", name="decoder_inputs")
    memory_in = keras.Input(shape=(None, dim), name="decoder_state_inputs")
    x = keras_hub.layers.TokenAndPositionEmbedding(len(TARGETS), TARGET_STEPS, dim)(decoder_inputs)
    x = keras_hub.layers.TransformerDecoder(intermediate, heads)(
        decoder_sequence=x, encoder_sequence=memory_in
    )
    outputs = keras.layers.Dense(len(TARGETS), activation="softmax")(x)
    decoder = keras.Model([decoder_inputs, memory_in], outputs, name="decoder")
    training = keras.Model(
        [encoder_inputs, decoder_inputs], decoder([decoder_inputs, memory]), name="transformer"
    )
    return training, encoder, decoder


def manifest(metrics: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "seq2seq",
        "decoder_kind": "transformer",
        "description": DESCRIPTION,
        "source": {
            "encoding": "index",
            "vocabulary": list(SOURCES),
            "tokenizer": "char",
            "pad_token": PAD,
            "length": SOURCE_LENGTH,
        },
        "target": {"encoding": "index", "vocabulary": list(TARGETS), "tokenizer": "char"},
        "start_token": START,
        "end_token": END,
        "max_steps": TARGET_STEPS,
        "example": EXAMPLE,
        "metrics": metrics,
        "training": training,
    }


def served_decoder(encoder: Any, decoder: Any) -> Any:
    """Texts -> ISO texts, decoded as the service decodes (the same compiled code)."""
    from service.inference.compiled.loader import build_model
    from service.inference.model.formats.keras_file import KerasGraph
    from service.inference.model.manifest import Manifest

    spec = Manifest.model_validate(manifest({}, {}))
    model = build_model(
        "dates-transformer", 1, spec, KerasGraph(encoder), KerasGraph(decoder), warm_up=False
    )
    end = TARGETS.index(END)

    def decode(texts: list[str]) -> list[str]:
        out: list[str] = []
        for first in range(0, len(texts), 2_000):
            batch = source_ids(texts[first : first + 2_000])
            limits = np.full(len(batch), TARGET_STEPS, np.int32)
            decoded = model.compute.decode(batch, limits, False)
            for row, length in zip(decoded.tokens, decoded.lengths, strict=True):
                ids = [int(i) for i in row[:length] if i != end]
                out.append("".join(TARGETS[i] for i in ids))
        return out

    return decode, model


def train(
    out: Path,
    seed: int = 1,
    examples: int = 50_000,
    epochs: int = 30,
    eval_size: int = 10_000,
    batch_size: int = 64,
    learning_rate: float = 0.001,
) -> dict[str, Any]:
    import keras

    seed_everything(seed)
    pairs = sample_dates(examples, seed)
    eval_seed = seed + EVAL_SEED_OFFSET
    eval_pairs = fresh_pairs(eval_size, eval_seed, {text for text, _ in pairs})
    shifted, targets = target_ids([iso for _, iso in pairs])
    x = [source_ids([text for text, _ in pairs]), shifted]
    training, encoder, decoder = build()
    training.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy"
    )
    decode, served = served_decoder(encoder, decoder)
    history, best_epoch, final, seconds = fit_on_dates(
        training, x, targets, decode, eval_pairs, epochs, batch_size
    )
    metrics = {
        "exact_match_accuracy": final,
        "eval_dates": len(eval_pairs),
        "eval_seed": eval_seed,
        "eval_note": "fresh dates from another seed, no text seen in training; decoded by "
        "the service's compiled decoding",
        "accuracy_per_epoch": history,
        "kv_cache": served.compute.kv_cache()[0],
    }
    run = {
        "seed": seed,
        "examples": examples,
        "max_epochs": epochs,
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "batch_size": batch_size,
        "optimizer": "adam",
        "learning_rate": learning_rate,
        "loss": "sparse_categorical_crossentropy",
        "seconds": seconds,
        **environment(),
    }
    save_models(out, {"encoder.keras": encoder, "decoder.keras": decoder})
    text = json.dumps(manifest(metrics, run), indent=2)
    (out / "model.json").write_text(text + "\n", encoding="utf-8")
    print(f"kept epoch {best_epoch}: exact match {final:.4%}; wrote {out}")
    return metrics
