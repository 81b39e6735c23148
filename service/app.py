"""The app factory. Models load in the lifespan, never at import."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import __version__
from service.api import errors, plain
from service.api.docs import openapi
from service.api.docs import pages as docs
from service.api.middleware import observe
from service.api.middleware.auth import ApiKeyAuth, load_keys
from service.api.middleware.body_limit import BodyLimit
from service.api.middleware.origins import BrowserGuard, split_list
from service.api.native import (
    admin,
    health,
    metrics,
    models,
    predict,
    session_socket,
    sessions,
)
from service.api.tfserving import routes as tfserving
from service.api.v2 import routes as v2
from service.config import Settings
from service.inference.model.registry import Registry
from service.runtime import Runtime
from service.sessions.memory import MemorySessionStore
from service.sessions.store import SessionStore

log = logging.getLogger("service")
CORS_REQUEST_HEADERS = [
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "Idempotency-Key",
    "X-Request-ID",
]
CORS_EXPOSED_HEADERS = ["Retry-After", "WWW-Authenticate", "Idempotent-Replayed", "X-Request-ID"]


def _load(settings: Settings) -> Registry:
    from service.inference.compiled import background, cached_steps, model_code, warmup, xla
    from service.inference.compiled.loader import load_store
    from service.inference.compiled.threads import configure_threads

    configure_threads(settings.tf_intra_op_threads, settings.tf_inter_op_threads)
    warmup.configure(settings.warmup)
    xla.configure(settings.xla, settings.batch_max_rows)
    model_code.configure(settings.trust_model_code)
    cached_steps.configure(settings.session_kv_cache_mb > 0)
    registry = load_store(settings.model_store, settings.default_model)
    background.start()  # SERVICE_WARMUP=background: the graphs greedy requests do not use
    xla.start()  # the XLA buckets queued while loading (SERVICE_XLA)
    return registry


def make_store(settings: Settings) -> SessionStore:
    if settings.session_backend in ("redis", "redis-cluster"):
        from service.sessions.redis import RedisSessionStore

        return RedisSessionStore(
            settings.redis_url,
            settings.session_ttl_seconds,
            settings.max_sessions,
            prefix=settings.redis_prefix,
            lock_ttl=settings.redis_lock_ttl_seconds,
            lock_wait=settings.session_lock_wait_seconds,
            max_per_owner=settings.max_sessions_per_key,
            keys_per_session=settings.idempotency_keys_per_session,
            answer_bytes_per_session=settings.idempotency_max_bytes_per_session,
            cluster=settings.session_backend == "redis-cluster",
            wait_replicas=settings.redis_wait_replicas,
        )
    return MemorySessionStore(
        settings.session_ttl_seconds,
        settings.max_sessions,
        max_per_owner=settings.max_sessions_per_key,
        keys_per_session=settings.idempotency_keys_per_session,
        answer_bytes_per_session=settings.idempotency_max_bytes_per_session,
        lock_wait=settings.session_lock_wait_seconds,
    )


def add_middleware(app: FastAPI, settings: Settings) -> None:
    """Outermost first: Host and Origin checks, CORS, API keys, the body limit. Raises
    ValueError for a bad key configuration."""
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    keys = load_keys(settings)
    if keys is not None:
        app.add_middleware(ApiKeyAuth, keys=keys, protect_stats=settings.protect_stats)
    origins = split_list(settings.cors_origins)
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    hosts = split_list(settings.allowed_hosts)
    app.add_middleware(BrowserGuard, cors_origins=origins, allowed_hosts=hosts)
    openapi.install(app, settings, keys_on=keys is not None)


def create_app(
    settings: Settings | None = None,
    registry: Registry | None = None,
    store: SessionStore | None = None,
) -> FastAPI:
    """`registry` and `store` may be given (tests with fakes); otherwise they are built
    from `settings` when the app starts."""
    settings = settings or Settings()
    store = store or make_store(settings)
    runtime = Runtime(settings=settings, store=store)
    logging.getLogger("service").setLevel(settings.log_level.upper())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.start()
        try:
            loaded: Registry = (
                registry if registry is not None else await to_thread.run_sync(_load, settings)
            )
            runtime.attach(loaded, settings.model_store if registry is None else None)
            # TensorFlow and Keras leave millions of long-lived objects behind; a full
            # collection walking them all stalls requests for tens of milliseconds.
            # Freezing moves them out of the collector's sight.
            gc.collect()
            gc.freeze()
            log.info("ready: models %s", ", ".join(loaded.names()))
            yield
        finally:
            await runtime.close()
            await store.close()

    app = FastAPI(
        title="seq2seq-serving",
        version=__version__,
        summary="Step-wise decoding and stateful sessions for Keras LSTM encoder-decoder models",
        lifespan=lifespan,
        docs_url=None,  # service/api/docs/pages.py serves /docs and /redoc without a CDN
        redoc_url=None,
        # FastAPI's own OpenTelemetry hooks: the service sets no OpenTelemetry provider
        # (its metrics are Prometheus'), and while on they look the providers up on every
        # request (environment variables included)
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.runtime = runtime
    errors.install(app)
    add_middleware(app, settings)
    observe.install(app, runtime)  # X-Request-ID, HTTP metrics, access log
    # hot routes first: routing tries routes in order
    # tfserving before models: its `:predict` routes come before /v1/models/{name}
    routers = (predict, sessions, session_socket, v2, tfserving, models, admin, health, metrics)
    for module in routers:
        app.include_router(module.router)
    plain.serve(app, (predict.router, sessions.router))  # Starlette alone: api/plain.py
    docs.install(app)
    # last: any other WebSocket path is a 404 answer, not an empty 403
    app.add_api_websocket_route("/{path:path}", session_socket.no_socket)
    return app
