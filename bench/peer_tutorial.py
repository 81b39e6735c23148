"""Peer (a): the tutorial's decoding loop behind FastAPI, as a user writes it by hand.

`python -m bench.peer_tutorial` (port from SERVICE_PORT): the `reverse` model's encoder
and decoder loaded with `keras.saving.load_model`, as the tutorial loads them, and a
handler that runs the classic predict_sequence loop: encoder `predict()` once, then
decoder `predict()` per step, argmax, the token fed back (vectorised over the request's
rows, as bench/inprocess.py times it). Same request and answer shape as `/predict`
(`{"inputs": [[...]]}` -> `{"outputs": [[...]]}`), served with the service's uvicorn
settings (service.server); TensorFlow's thread pools set as the service sets them, so
that only the decoding differs.

The handler is `async def`, so the loops run one request at a time. A plain `def`
handler (FastAPI's thread pool) was tried first and is worse here: 32 predict() loops
interleaved in threads under the GIL finished 1.8 sequences/s at 32 connections and 15
of 37 requests went past wrk's 10 s timeout (one 12 s run on this 2-core machine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

from service.config import Settings
from service.server import serve

VERSION = Path(__file__).resolve().parents[1] / "model_store" / "reverse" / "1"


class PredictRequest(BaseModel):
    inputs: list[list[int]]


class PredictResponse(BaseModel):
    outputs: list[list[int]]


def create_app(settings: Settings) -> FastAPI:
    from service.inference.compiled.threads import configure_threads

    configure_threads(settings.tf_intra_op_threads, settings.tf_inter_op_threads)
    import keras

    encoder = keras.saving.load_model(VERSION / "encoder.keras", compile=False)
    decoder = keras.saving.load_model(VERSION / "decoder.keras", compile=False)
    cardinality, steps = 51, 3
    eye = np.eye(cardinality, dtype=np.float32)

    def predict_sequence(sources: np.ndarray) -> np.ndarray:
        h, c = encoder.predict(eye[sources], verbose=0)
        token = np.zeros(len(sources), np.int64)  # the start token
        out = []
        for _ in range(steps):
            probs, h, c = decoder.predict([eye[token][:, None, :], h, c], verbose=0)
            token = np.argmax(probs[:, -1, :], axis=-1)
            out.append(token)
        return np.stack(out, axis=1)

    predict_sequence(np.ones((1, 6), np.int64))  # Keras builds its predict function
    app = FastAPI()

    @app.post("/predict")
    async def predict(request: PredictRequest) -> PredictResponse:
        tokens = predict_sequence(np.asarray(request.inputs, np.int64))
        return PredictResponse(outputs=tokens.tolist())

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


if __name__ == "__main__":
    settings = Settings()
    serve(create_app(settings), settings)
