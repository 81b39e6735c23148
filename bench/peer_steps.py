"""Peer (b): a stateless per-step server, as TF Serving or Triton serve a split seq2seq model.

`python -m bench.peer_steps` (port from SERVICE_PORT) serves the `reverse` model's two
halves as two stateless endpoints, the way a model server exposes an encoder and a
decoder signature:

- `POST /encode` `{"sources": [[...]]}` -> `{"states": [h, c]}`;
- `POST /step` `{"tokens": [...], "states": [h, c]}` -> `{"probabilities": [[...]],
  "states": [h, c]}`: one decoder step.

The client runs the decoding loop (bench/client_loops.py): encode, then one HTTP call
per decoder step, argmax on its side, the states (2 x 128 floats per row) sent back and
forth in JSON every call. Neither endpoint is in the service (its TF Serving door serves
whole decodes only), so this peer calls the service's own compiled `encode` and `step`
graphs (service.inference.compiled), one call per request, on the event loop (nothing
is batched across requests: TF Serving's batching is off by default), served with the
service's uvicorn settings (service.server) and its TensorFlow thread settings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

from service.config import Settings
from service.server import serve

STORE = Path(__file__).resolve().parents[1] / "model_store"


class EncodeRequest(BaseModel):
    sources: list[list[int]]


class EncodeResponse(BaseModel):
    states: list[list[list[float]]]


class StepRequest(BaseModel):
    tokens: list[int]
    states: list[list[list[float]]]


class StepResponse(BaseModel):
    probabilities: list[list[float]]
    states: list[list[list[float]]]


def load_reverse(settings: Settings):  # type: ignore[no-untyped-def]
    """The shipped `reverse` model as the service compiles it: only `encode` and `step`."""
    from service.inference.compiled import warmup
    from service.inference.compiled.loader import load_model
    from service.inference.compiled.threads import configure_threads
    from service.inference.model.store import check_store

    configure_threads(settings.tf_intra_op_threads, settings.tf_inter_op_threads)
    warmup.configure("lazy")  # nothing but what this peer calls
    for name, version, directory, manifest, files in check_store(STORE):
        if name == "reverse":
            compute = load_model(directory, name, version, manifest, files).compute
            for graph in ("encode", "step"):
                for batch in (1, 2):
                    warmup.exercise(compute, graph, batch)
            return compute
    raise SystemExit(f"no reverse model in {STORE}")


def create_app(settings: Settings) -> FastAPI:
    compute = load_reverse(settings)
    app = FastAPI()

    @app.post("/encode")
    async def encode(request: EncodeRequest) -> EncodeResponse:
        states = compute.encode(np.asarray(request.sources, np.int32))
        return EncodeResponse(states=[s.tolist() for s in states])

    @app.post("/step")
    async def step(request: StepRequest) -> StepResponse:
        states = [np.asarray(s, np.float32) for s in request.states]
        probs, new = compute.step(np.asarray(request.tokens, np.int32), states)
        return StepResponse(probabilities=probs.tolist(), states=[s.tolist() for s in new])

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


if __name__ == "__main__":
    settings = Settings()
    serve(create_app(settings), settings)
