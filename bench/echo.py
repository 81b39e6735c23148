"""The HTTP ceiling: a trivial FastAPI POST endpoint, served exactly like the service."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

from service.config import Settings
from service.server import serve


class EchoRequest(BaseModel):
    inputs: list[list[int]]


class EchoResponse(BaseModel):
    outputs: list[list[int]]


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: EchoRequest) -> EchoResponse:
        return EchoResponse(outputs=request.inputs)

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    return app


if __name__ == "__main__":
    serve(create_app(), Settings())
