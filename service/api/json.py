"""Responses serialised once.

Returning a Response skips FastAPI's re-validation of the returned model against
`response_model` (kept on the routes for the OpenAPI schema); the models are built
by our own code, so validating them again only costs time on the hot path.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def json_response(body: BaseModel, status_code: int = 200) -> Response:
    return Response(
        body.model_dump_json(exclude_none=True),
        status_code=status_code,
        media_type="application/json",
    )
