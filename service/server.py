"""Run an ASGI app under uvicorn with the service's server settings (one worker)."""

from __future__ import annotations

from typing import Any

from service.config import Settings


def run(app: Any, settings: Settings) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.access_log,
        workers=1,
        loop="auto",
        http="auto",
    )
