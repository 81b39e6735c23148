"""Run an ASGI app under uvicorn with the service's server settings (one worker).

Shutdown on SIGTERM or SIGINT, in order: readiness answers 503 at once while requests
are still served for SERVICE_SHUTDOWN_DELAY_SECONDS (load balancers notice and stop
sending); then the listening socket closes and in-flight requests get up to
SERVICE_SHUTDOWN_TIMEOUT_SECONDS; then the lifespan lets queued batches finish (same
bound) and closes the session store; the process exits 0. A second signal skips the
waiting.

Connections are guarded against slow, idle and oversized clients and capped
(api/http_protocol.py, api/connection_cap.py); the soft open-file limit is raised to the
hard one first, and the cap kept under it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from service.api.connections.answers import Limits
from service.api.connections.cap import ConnectionCap, fit, raise_open_files_limit
from service.api.connections.protocol import protocol_class
from service.api.connections.websocket import GuardedWebSocket
from service.config import Settings
from service.observability import logs

log = logging.getLogger("service")


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, delay: float, on_signal: Callable[[], None] | None):
        super().__init__(config)
        self.delay = delay
        self.on_signal = on_signal
        self.exit_at: float | None = None  # monotonic time to stop accepting
        self.announced = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Unlike uvicorn, the signal is not re-raised after a graceful shutdown: that
        # would end the process by the signal (exit status 143) instead of with 0.
        if self.exit_at is not None:  # a second signal: stop waiting
            self.force_exit = True
            self.should_exit = True
            return
        self.exit_at = time.monotonic() + self.delay
        if self.on_signal is not None:
            self.on_signal()
        if self.delay <= 0:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self.exit_at is not None and not self.announced:
            # logged here, not in the signal handler: a handler interrupting a write to
            # the same stream would fail with a reentrant-call error
            self.announced = True
            log.warning(
                "shutting down: readiness 503; serving %.3g s more, then in-flight requests "
                "and batches get up to %.3g s",
                self.delay,
                self.config.timeout_graceful_shutdown or 0,
            )
        if self.exit_at is not None and time.monotonic() >= self.exit_at:
            self.should_exit = True
        return await super().on_tick(counter)


def uvicorn_config(app: Any, settings: Settings, open_files: int) -> uvicorn.Config:
    """The server's uvicorn settings: one worker, httptools with the connection guards
    and cap. `open_files`: the soft open-file limit the cap must fit under."""
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    try:
        max_connections = fit(settings.max_connections, settings.probe_connections, open_files)
    except ValueError as exc:  # no room under the open-file limit: a message, not a traceback
        raise SystemExit(f"invalid configuration: {exc}") from None
    limits = Limits(
        settings.max_header_bytes, settings.header_timeout_seconds, settings.body_timeout_seconds
    )
    cap = ConnectionCap(max_connections, settings.probe_connections)
    metrics = getattr(runtime, "metrics", None)
    if metrics is not None:  # reasons are the guards' fixed phrases: bounded labels
        cap.tally.counted = lambda reason: metrics.connections_cut.labels(reason).inc()
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,  # logs.configure did it
        access_log=False,  # the service writes its own, with latency (api/access_log.py)
        workers=1,
        loop="auto",
        # httptools, as "auto" picks, with header, timeout and connection guards; uvicorn's
        # limit_concurrency is not used: it answers every request 503 at the limit, probes
        # too, and never refuses a connection whose headers do not finish
        http=protocol_class(limits, cap),
        # session steps over WebSocket; the upgrade keeps the connection in the cap
        # (api/connections/protocol.py, websocket.py)
        ws=GuardedWebSocket,
        ws_max_size=settings.ws_max_message_bytes or settings.max_body_bytes,
        ws_ping_interval=settings.ws_ping_interval_seconds or None,
        ws_ping_timeout=settings.ws_ping_interval_seconds or None,
        # small JSON messages: compression would cost more CPU than it saves
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds),
    )


def serve(app: Any, settings: Settings) -> None:
    """`app.state.runtime`, if the app has one, is told at once when shutdown begins."""
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    logs.configure(settings)
    config = uvicorn_config(app, settings, raise_open_files_limit())
    on_signal = getattr(runtime, "start_draining", None)
    GracefulServer(config, settings.shutdown_delay_seconds, on_signal).run()
