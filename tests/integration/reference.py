"""A plain numpy LSTM read from the shipped Keras files: the float reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NumpyLSTM:
    """Keras LSTM cell: gates in the fused kernel are ordered input, forget, cell, output."""

    def __init__(self, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray):
        self.kernel = kernel.astype(np.float64)
        self.recurrent = recurrent.astype(np.float64)
        self.bias = bias.astype(np.float64)

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = x @ self.kernel + h @ self.recurrent + self.bias
        i, f, g, o = np.split(z, 4, axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        return h, c


def layer_weights(path: Path, layer: str) -> list[np.ndarray]:
    import keras

    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    return [np.asarray(w) for w in model.get_layer(layer).get_weights()]


def one_hot(token: int, cardinality: int) -> np.ndarray:
    x = np.zeros(cardinality)
    x[token] = 1.0
    return x
