"""Responses serialised once.

Returning a Response skips FastAPI's re-validation of the returned model against
`response_model` (kept on the routes for the OpenAPI schema); the models are built
by our own code, so validating them again only costs time on the hot path.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

from service.api.bodies.pieces import serialised


def json_response(body: BaseModel, status_code: int = 200) -> Response:
    return Response(
        body.model_dump_json(exclude_none=True),
        status_code=status_code,
        media_type="application/json",
    )


async def json_answer(body: BaseModel, status_code: int = 200) -> Response:
    """`json_response` for an answer that can be large (a predict's): serialised a piece
    at a time, the event loop free between pieces (service/api/bodies/pieces.py)."""
    return Response(await serialised(body), status_code=status_code, media_type="application/json")
