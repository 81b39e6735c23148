"""Problem A: reverse the first three of six random integers (1..50)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from service.inference.model.manifest import Manifest
from service.inference.model.manifest_parts import Side
from service.progress import bars, task
from service.training.basics import environment, one_hot, save_models, seed_everything

CARDINALITY = 51  # token 0 is the start/padding symbol
SOURCE_LENGTH = 6
TARGET_LENGTH = 3
START_TOKEN = 0


def make_sources(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(1, CARDINALITY, size=(n, SOURCE_LENGTH), dtype=np.int32)


def targets_for(sources: np.ndarray) -> np.ndarray:
    return sources[:, :TARGET_LENGTH][:, ::-1].copy()


def build(units: int = 128) -> tuple[Any, Any, Any]:
    """Training model and the two inference models; all three share layers."""
    import keras
    from keras import layers

    source = keras.Input((None, CARDINALITY), name="source")
    _, h, c = layers.LSTM(units, return_state=True, name="encoder_lstm")(source)
    decoder_lstm = layers.LSTM(units, return_sequences=True, return_state=True, name="decoder_lstm")
    dense = layers.Dense(CARDINALITY, activation="softmax", name="probabilities")

    shifted = keras.Input((None, CARDINALITY), name="shifted_target")
    sequence, _, _ = decoder_lstm(shifted, initial_state=[h, c])
    training = keras.Model([source, shifted], dense(sequence), name="reverse_training")

    encoder = keras.Model(source, [h, c], name="reverse_encoder")

    token = keras.Input((1, CARDINALITY), name="token")
    h_in = keras.Input((units,), name="h")
    c_in = keras.Input((units,), name="c")
    step, h_out, c_out = decoder_lstm(token, initial_state=[h_in, c_in])
    decoder = keras.Model([token, h_in, c_in], [dense(step), h_out, c_out], name="reverse_decoder")
    return training, encoder, decoder


def exact_accuracy(encoder: Any, decoder: Any, manifest: Manifest, sources: np.ndarray) -> float:
    """Exact-sequence accuracy through the same compute and decoding code the server uses."""
    from service.inference.compiled.loader import build_model
    from service.inference.model.formats.keras_file import KerasGraph
    from service.inference.serving.decoding import greedy_decode

    compute = build_model(
        "reverse", 0, manifest, KerasGraph(encoder), KerasGraph(decoder), warm_up=False
    ).compute
    outputs, _ = greedy_decode(compute, sources.tolist(), TARGET_LENGTH, False)
    expected = targets_for(sources)
    return float(np.mean(np.all(np.asarray(outputs) == expected, axis=1)))


def train(
    out: Path,
    seed: int = 1,
    examples: int = 100_000,
    epochs: int = 6,
    batch_size: int = 32,
    eval_size: int = 10_000,
    units: int = 128,
) -> Manifest:
    from service.training.progress import fit_keeping_best

    seed_everything(seed)
    rng = np.random.default_rng(seed)
    sources = make_sources(rng, examples)
    targets = targets_for(sources)
    shifted = np.concatenate(
        [np.full((examples, 1), START_TOKEN, np.int32), targets[:, :-1]], axis=1
    )
    seen = {tuple(row) for row in sources.tolist()}
    fresh = [row for row in make_sources(rng, eval_size * 2).tolist() if tuple(row) not in seen]
    eval_sources = np.asarray(fresh[:eval_size], dtype=np.int32)

    training, encoder, decoder = build(units)
    training.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    manifest = Manifest(
        kind="seq2seq",
        description="Problem A: the first 3 of 6 integers (1..50) in reverse order.",
        source=Side(encoding="one_hot", cardinality=CARDINALITY),
        target=Side(encoding="one_hot", cardinality=CARDINALITY),
        start_token=START_TOKEN,
        max_steps=TARGET_LENGTH,
        example=[10, 20, 30, 40, 50, 1],
    )
    x = [one_hot(sources, CARDINALITY), one_hot(shifted, CARDINALITY)]
    y = one_hot(targets, CARDINALITY)
    started = time.monotonic()

    def evaluate() -> float:
        # one graph call decodes every source (most of the time goes to building it):
        # nothing to count, so the bar only pulses while it runs
        with task(progress, f"evaluating on {len(eval_sources)} fresh sources", None):
            return exact_accuracy(encoder, decoder, manifest, eval_sources)

    with bars() as progress:
        kept = fit_keeping_best(
            progress,
            training,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            evaluate=evaluate,
            report=lambda epoch, accuracy: (
                f"epoch {epoch}/{epochs}: exact-sequence accuracy on {len(eval_sources)} "
                f"fresh sources = {accuracy:.4%}"
            ),
            stop_at=1.0,
        )
        history, best_epoch = kept.history, kept.best_epoch
        with task(progress, f"evaluating the kept epoch {best_epoch}", None):
            final = exact_accuracy(encoder, decoder, manifest, eval_sources)
    manifest.metrics = {
        "exact_sequence_accuracy": final,
        "eval_sources": len(eval_sources),
        "eval_note": "fresh random sources, none seen in training",
        "accuracy_per_epoch": history,
        "best_epoch": best_epoch,
    }
    manifest.training = {
        "seed": seed,
        "examples": examples,
        "batch_size": batch_size,
        "max_epochs": epochs,
        "epochs_run": len(history),
        "units": units,
        "optimizer": "adam",
        "loss": "categorical_crossentropy",
        "seconds": round(time.monotonic() - started, 1),
        **environment(),
    }
    save_models(out, {"encoder.keras": encoder, "decoder.keras": decoder})
    manifest.write(out)
    print(f"kept epoch {best_epoch}: exact-sequence accuracy {final:.4%}; wrote {out}")
    return manifest
