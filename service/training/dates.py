"""Problem C: dates in many human formats -> ISO 8601, character level, with attention.

The encoder is a bidirectional LSTM over the one-hot source characters; its output sequence is
the attention memory and its concatenated forward/backward states start the decoder, an LSTM
twice as wide with dot-product attention over the memory. The inference decoder takes
`[token, memory, h, c]` and returns `[probabilities, h, c]` for one step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import Progress

from service.progress import bars, task
from service.training.basics import environment, save_models, seed_everything
from service.training.date_text import (
    END,
    PAD,
    SOURCE_LENGTH,
    SOURCE_VOCABULARY,
    START,
    TARGET_STEPS,
    TARGET_VOCABULARY,
    decode_targets,
    encode_sources,
    encode_targets,
    sample_dates,
)

EXAMPLE = "saturday, november 21, 2026"  # model.json's `example`: what `check` decodes
DESCRIPTION = (
    "Dates in many human formats -> ISO 8601 "
    "(character level, bidirectional LSTM encoder, attention decoder)."
)
EVAL_SEED_OFFSET = 1_000
TARGET_ON = 0.999  # stop training once this exact-match accuracy is reached
DECODE_BATCH = 2_000
Decoder = Callable[[Sequence[str]], list[str]]


def build(units: int = 32) -> tuple[Any, Any, Any]:
    """Training model and the two inference models; all three share layers."""
    import keras
    from keras import layers

    source_size, target_size, width = len(SOURCE_VOCABULARY), len(TARGET_VOCABULARY), 2 * units
    source = keras.Input((SOURCE_LENGTH, source_size), name="source")
    encoded = layers.Bidirectional(
        layers.LSTM(units, return_sequences=True, return_state=True), name="encoder_bilstm"
    )(source)
    memory, forward_h, forward_c, backward_h, backward_c = encoded
    h = layers.Concatenate(name="encoder_h")([forward_h, backward_h])
    c = layers.Concatenate(name="encoder_c")([forward_c, backward_c])

    decoder_lstm = layers.LSTM(width, return_sequences=True, return_state=True, name="decoder_lstm")
    attention = layers.Attention(name="attention")
    join = layers.Concatenate(name="decoder_context")
    dense = layers.Dense(target_size, activation="softmax", name="probabilities")

    def decode(tokens: Any, memory: Any, h: Any, c: Any) -> tuple[Any, Any, Any]:
        sequence, h_out, c_out = decoder_lstm(tokens, initial_state=[h, c])
        context = attention([sequence, memory])
        return dense(join([sequence, context])), h_out, c_out

    shifted = keras.Input((None, target_size), name="shifted_target")
    probabilities, _, _ = decode(shifted, memory, h, c)
    training = keras.Model([source, shifted], probabilities, name="dates_training")

    encoder = keras.Model(source, [memory, h, c], name="dates_encoder")

    token = keras.Input((None, target_size), name="token")
    memory_in = keras.Input((SOURCE_LENGTH, width), name="memory")
    h_in = keras.Input((width,), name="h")
    c_in = keras.Input((width,), name="c")
    step = list(decode(token, memory_in, h_in, c_in))
    decoder = keras.Model([token, memory_in, h_in, c_in], step, name="dates_decoder")
    return training, encoder, decoder


def greedy_decoder(encoder: Any, decoder: Any, batch_size: int = DECODE_BATCH) -> Decoder:
    """Texts -> ISO texts: encode once, then TARGET_STEPS decoder steps on the whole batch.

    The step loop runs in one `tf.function` calling the inference models directly.
    """
    import tensorflow as tf

    target_size = len(TARGET_VOCABULARY)
    start = TARGET_VOCABULARY.index(START)
    signature = [tf.TensorSpec((None, SOURCE_LENGTH, len(SOURCE_VOCABULARY)), tf.float32)]

    @tf.function(input_signature=signature)  # type: ignore[untyped-decorator]
    def run(source: Any) -> Any:
        memory, h, c = encoder(source, training=False)
        token = tf.one_hot(tf.fill([tf.shape(source)[0], 1], start), target_size)
        chosen = []
        for _ in range(TARGET_STEPS):
            probabilities, h, c = decoder([token, memory, h, c], training=False)
            index = tf.argmax(probabilities[:, -1], axis=-1, output_type=tf.int32)
            chosen.append(index)
            token = tf.one_hot(index[:, None], target_size)
        return tf.stack(chosen, axis=1)

    def decode(texts: Sequence[str]) -> list[str]:
        isos: list[str] = []
        for first in range(0, len(texts), batch_size):
            batch = encode_sources(texts[first : first + batch_size])
            isos.extend(decode_targets(run(tf.constant(batch)).numpy()))
        return isos

    return decode


def exact_match(
    decode: Decoder, pairs: Sequence[tuple[str, str]], advance: Callable[[int], None] | None = None
) -> float:
    """Decoded in the decoder's own batches (the same results), `advance` after each."""
    texts = [text for text, _ in pairs]
    predicted: list[str] = []
    for first in range(0, len(texts), DECODE_BATCH):
        predicted.extend(decode(texts[first : first + DECODE_BATCH]))
        if advance is not None:
            advance(len(predicted) - first)
    return float(np.mean([guess == iso for guess, (_, iso) in zip(predicted, pairs, strict=True)]))


def evaluate(
    progress: Progress, decode: Decoder, pairs: Sequence[tuple[str, str]], description: str
) -> float:
    """`exact_match` with a bar over the pairs while it runs."""
    with task(progress, description, len(pairs)) as evaluating:
        return exact_match(decode, pairs, lambda n: progress.advance(evaluating, n))


def fresh_pairs(count: int, seed: int, seen: set[str]) -> list[tuple[str, str]]:
    """`count` distinct pairs from `seed` whose texts are not in `seen`."""
    pairs: dict[str, str] = {}
    for text, iso in sample_dates(count * 2, seed):
        if text not in seen and len(pairs) < count:
            pairs.setdefault(text, iso)
    if len(pairs) < count:
        raise RuntimeError(f"only {len(pairs)} fresh dates from seed {seed}")
    return list(pairs.items())


def manifest(metrics: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "seq2seq",
        "description": DESCRIPTION,
        "source": {
            "encoding": "one_hot",
            "vocabulary": list(SOURCE_VOCABULARY),
            "tokenizer": "char",
            "pad_token": PAD,
            "length": SOURCE_LENGTH,
        },
        "target": {
            "encoding": "one_hot",
            "vocabulary": list(TARGET_VOCABULARY),
            "tokenizer": "char",
        },
        "start_token": START,
        "end_token": END,
        "max_steps": TARGET_STEPS,
        "example": EXAMPLE,
        "metrics": metrics,
        "training": training,
    }


def fit_on_dates(
    training: Any,
    x: list[np.ndarray],
    targets: np.ndarray,
    decode: Decoder,
    eval_pairs: list[tuple[str, str]],
    epochs: int,
    batch_size: int,
) -> tuple[list[float], int, float, float]:
    """Fit epoch by epoch, keeping the best epoch by exact match of `decode` on
    `eval_pairs` (stopping once TARGET_ON is reached), then measure the kept epoch again:
    the accuracy per epoch, the kept epoch, its accuracy and the seconds fitting took.
    Both date models (recurrent, Transformer) train so."""
    from service.training.progress import fit_keeping_best

    started = time.monotonic()
    with bars() as progress:
        kept = fit_keeping_best(
            progress,
            training,
            x,
            targets,
            epochs=epochs,
            batch_size=batch_size,
            evaluate=lambda: evaluate(progress, decode, eval_pairs, "evaluating on fresh dates"),
            report=lambda epoch, accuracy: (
                f"epoch {epoch}/{epochs}: exact match on {len(eval_pairs)} fresh dates = "
                f"{accuracy:.4%} ({time.monotonic() - started:.0f} s)"
            ),
            stop_at=TARGET_ON,
        )
        seconds = round(time.monotonic() - started, 1)
        best = kept.best_epoch
        final = evaluate(progress, decode, eval_pairs, f"evaluating the kept epoch {best}")
    return kept.history, best, final, seconds


def train(
    out: Path,
    seed: int = 1,
    examples: int = 50_000,
    epochs: int = 12,
    eval_size: int = 10_000,
    units: int = 32,
    batch_size: int = 64,
    learning_rate: float = 0.003,
) -> dict[str, Any]:
    """Train, keep the best epoch by exact match on fresh dates, save it to `out`; the metrics."""
    import keras

    seed_everything(seed)  # Python random, numpy and TensorFlow (keras.utils.set_random_seed)
    pairs = sample_dates(examples, seed)
    eval_seed = seed + EVAL_SEED_OFFSET
    eval_pairs = fresh_pairs(eval_size, eval_seed, {text for text, _ in pairs})
    shifted, targets = encode_targets([iso for _, iso in pairs])
    x = [encode_sources([text for text, _ in pairs]), shifted]

    training, encoder, decoder = build(units)
    training.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="categorical_crossentropy"
    )
    decode = greedy_decoder(encoder, decoder)
    history, best_epoch, final, seconds = fit_on_dates(
        training, x, targets, decode, eval_pairs, epochs, batch_size
    )
    metrics = {
        "exact_match_accuracy": final,
        "eval_dates": len(eval_pairs),
        "eval_seed": eval_seed,
        "eval_note": "fresh dates from another seed, no text seen in training",
        "accuracy_per_epoch": history,
    }
    run = {
        "seed": seed,
        "examples": examples,
        "max_epochs": epochs,
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "units": units,
        "batch_size": batch_size,
        "optimizer": "adam",
        "learning_rate": learning_rate,
        "loss": "categorical_crossentropy",
        "seconds": seconds,
        **environment(),
    }
    save_models(out, {"encoder.keras": encoder, "decoder.keras": decoder})
    text = json.dumps(manifest(metrics, run), indent=2)
    (out / "model.json").write_text(text + "\n", encoding="utf-8")
    print(f"kept epoch {best_epoch}: exact match {final:.4%}; wrote {out}")
    return metrics
