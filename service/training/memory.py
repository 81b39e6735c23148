"""Problem B: remember the first value of 3,0,1,2,3 / 4,0,1,2,4 to predict the last."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from service.inference.model.manifest import Manifest
from service.inference.model.manifest_parts import Side
from service.progress import bars
from service.training.basics import environment, one_hot, save_models, seed_everything

CARDINALITY = 5
SEQUENCES = ((3, 0, 1, 2, 3), (4, 0, 1, 2, 4))
MIN_CONFIDENCE = 0.5


def build(units: int = 20) -> tuple[Any, Any]:
    """A whole-sequence training model and the one-step serving model sharing its layers.

    Training on whole sequences from a zero state is what the tutorial's stateful
    batch-size-1 loop with a reset after each sequence approximates, except that
    gradients flow back through all steps (the tutorial truncates them to one step,
    which is why it does not always converge).
    """
    import keras
    from keras import layers

    lstm = layers.LSTM(units, return_sequences=True, return_state=True, name="lstm")
    dense = layers.Dense(CARDINALITY, activation="sigmoid", name="probabilities")

    sequence = keras.Input((None, CARDINALITY), name="sequence")
    outputs, _, _ = lstm(sequence)
    training = keras.Model(sequence, dense(outputs), name="memory_training")

    token = keras.Input((1, CARDINALITY), name="token")
    h_in = keras.Input((units,), name="h")
    c_in = keras.Input((units,), name="c")
    out, h_out, c_out = lstm(token, initial_state=[h_in, c_in])
    step = keras.Model([token, h_in, c_in], [dense(out), h_out, c_out], name="memory_step")
    return training, step


def predictions(step: Any, manifest: Manifest) -> tuple[list[list[int]], float]:
    """Each sequence's inputs stepped from a zero state, with the server's own code.

    Returns the argmax predictions and the lowest probability among the chosen outputs.
    """
    from service.inference.compiled.loader import build_model
    from service.inference.model.formats.keras_file import KerasGraph
    from service.inference.serving.decoding import run_steps

    loaded = build_model("memory", 0, manifest, None, KerasGraph(step), warm_up=False)
    compute, spec = loaded.compute, loaded.spec
    inputs = [list(s[:-1]) for s in SEQUENCES]
    run = run_steps(compute, spec.zero_states(len(inputs)), inputs, True)
    assert run.probabilities is not None
    chosen = [
        probs[token]
        for outs, steps in zip(run.outputs, run.probabilities, strict=True)
        for token, probs in zip(outs, steps, strict=True)
    ]
    return run.outputs, min(chosen)


def train(
    out: Path, seed: int = 1, max_epochs: int = 3000, check_every: int = 50, units: int = 20
) -> Manifest:
    from service.training.progress import EpochBars

    seed_everything(seed)
    training, step = build(units)
    training.compile(optimizer="adam", loss="binary_crossentropy")
    data = np.asarray(SEQUENCES, dtype=np.int32)
    x, y = one_hot(data[:, :-1], CARDINALITY), one_hot(data[:, 1:], CARDINALITY)
    expected = [list(s[1:]) for s in SEQUENCES]
    manifest = Manifest(
        kind="step",
        description="Problem B: predict the next value of 3,0,1,2,3 or 4,0,1,2,4; "
        "the last answer needs the first value. Reset the state between sequences.",
        source=Side(encoding="one_hot", cardinality=CARDINALITY),
        target=Side(encoding="one_hot", cardinality=CARDINALITY),
        max_steps=4,
        example=[3, 0, 1, 2],
    )
    started = time.monotonic()
    epochs = 0
    got: list[list[int]] = []
    confidence = 0.0
    with bars() as progress:
        # a batch is one of two sequences, an epoch a few milliseconds: epochs only
        epoch_bars = EpochBars(progress, max_epochs, batches=False)
        while epochs < max_epochs:
            training.fit(
                x,
                y,
                batch_size=1,
                epochs=check_every,
                shuffle=True,
                verbose=0,
                callbacks=[epoch_bars],
            )
            epochs += check_every
            got, confidence = predictions(step, manifest)
            loss = float(training.evaluate(x, y, verbose=0))
            print(
                f"epoch {epochs}: loss {loss:.4f}, predictions {got}, "
                f"lowest chosen probability {confidence:.3f}",
                flush=True,
            )
            # exact, and every chosen sigmoid output clearly on (not a near tie)
            if got == expected and confidence >= MIN_CONFIDENCE:
                break
    exact = sum(g == e for g, e in zip(got, expected, strict=True))
    if exact != len(expected) or confidence < MIN_CONFIDENCE:
        raise RuntimeError(
            f"memory model did not converge in {max_epochs} epochs: {got}, "
            f"lowest chosen probability {confidence:.3f}"
        )
    manifest.metrics = {
        "sequences_exact": exact,
        "sequences": len(expected),
        "predictions": {",".join(map(str, s[:-1])): g for s, g in zip(SEQUENCES, got, strict=True)},
        "lowest_chosen_probability": confidence,
        "final_loss": loss,
    }
    manifest.training = {
        "seed": seed,
        "epochs_needed": epochs,
        "check_every": check_every,
        "units": units,
        "batch_size": 1,
        "optimizer": "adam",
        "loss": "binary_crossentropy",
        "recipe": "whole-sequence BPTT from a zero state (equivalent to a reset after each "
        "sequence); trained until both sequences are exact with every chosen output >= "
        f"{MIN_CONFIDENCE}",
        "seconds": round(time.monotonic() - started, 1),
        **environment(),
    }
    save_models(out, {"step.keras": step})
    manifest.write(out)
    print(
        f"both sequences exact after {epochs} epochs (lowest chosen probability "
        f"{confidence:.3f}); wrote {out}"
    )
    return manifest
