"""Training progress on `service.progress` bars: a Keras callback for epochs and batches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
from rich.progress import Progress

from service.progress import live


class EpochBars(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    """An epochs bar advanced once per epoch, its description the epoch's loss (and accuracy
    when compiled with it), and a batches bar within the epoch.

    One instance serves every `fit` of a run: the shipped problems call `fit` for one epoch
    (or one check's worth) at a time to evaluate in between, so it counts epochs itself
    rather than trusting Keras's epoch index, which restarts at 0 on every call.
    """

    def __init__(self, progress: Progress, epochs: int, batches: bool = True) -> None:
        super().__init__()
        self.progress = progress
        self.epochs = progress.add_task("epochs", total=epochs)
        self.batches = progress.add_task("batches", total=None) if batches else None

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.batches is not None:
            self.progress.reset(self.batches, total=self.params.get("steps"))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        # cheap: Keras converts the batch's logs to Python numbers for its own callbacks
        # (History) whether or not this hook exists; this adds only a counter under a lock
        if self.batches is not None:
            self.progress.advance(self.batches)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        figures = [
            f"{name} {value:.4f}"
            for name, value in (logs or {}).items()
            if isinstance(value, int | float)
        ]
        description = "  ".join(["epochs", *figures])
        self.progress.update(self.epochs, advance=1, description=description)


def fit_verbose(progress: Progress) -> int:
    """Keras's own line per epoch (verbose 2) only where no bar replaces it."""
    return 0 if live(progress) else 2


@dataclass
class Kept:
    """What `fit_keeping_best` did: the accuracy after each epoch, the epoch kept."""

    history: list[float]
    best_epoch: int


def fit_keeping_best(
    progress: Progress,
    training: Any,
    x: Any,
    y: Any,
    *,
    epochs: int,
    batch_size: int,
    evaluate: Callable[[], float],
    report: Callable[[int, float], str],
    stop_at: float,
) -> Kept:
    """Fit one epoch at a time (the bars count all of them), `evaluate` after each and
    print `report(epoch, accuracy)`; stop once an epoch reaches `stop_at`. The best epoch's
    weights are restored (accuracy is not monotonic across epochs)."""
    epoch_bars = EpochBars(progress, epochs)
    history: list[float] = []
    best_accuracy, best_weights, best_epoch = -1.0, training.get_weights(), 0
    for epoch in range(1, epochs + 1):
        training.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=1,
            shuffle=True,
            verbose=fit_verbose(progress),
            callbacks=[epoch_bars],
        )
        accuracy = evaluate()
        history.append(accuracy)
        print(report(epoch, accuracy), flush=True)
        if accuracy > best_accuracy:
            best_accuracy, best_weights, best_epoch = accuracy, training.get_weights(), epoch
        if accuracy >= stop_at:
            break
    training.set_weights(best_weights)
    return Kept(history, best_epoch)
