"""The request observer: X-Request-ID, HTTP metrics and the access log line, in one
pure ASGI layer around everything else.

It wraps even Starlette's ServerErrorMiddleware (the outermost layer FastAPI builds),
so every answer carries X-Request-ID and is counted: the refusals of the other
middleware (400, 401, 403, 413) and an unexpected error's 500 included. The request
id is the client's `X-Request-ID` when it is 1-128 printable ASCII characters
without spaces, else 32 new random hex digits; every log line written while the request is
served carries it (service/observability/logs.py).

An unexpected error (a bug) is answered 500 by ServerErrorMiddleware, which logs it
through the app's handler (service/errors.py) and then raises it again for the server
to see. Once that 500 is complete, the observer keeps the exception from the server:
uvicorn would log it a second time and close the keep-alive connection without saying
`Connection: close`, so a client's next request on it would fail. An exception raised
before the answer started, or in the middle of it, still reaches the server, which
answers its own 500 with `Connection: close`, or cuts the incomplete answer short.

A redirect (Starlette's to the path with or without a trailing slash) carries a
relative `Location`: Starlette writes an absolute URL made from the request's `Host`
header, which a client chooses (`Host: evil.example` -> `http://evil.example/...`).

Metric labels: the route template (`/v1/sessions/{session_id}/step`; one fixed value
for paths no route matches) and the model the request used, as the dataplane noted it
or as a path parameter names a served model; never a raw path or an id.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterable, Iterator
from contextvars import Token
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.middleware import access_log
from service.observability.metrics import UNMATCHED
from service.observability.request_context import RequestContext, current
from service.runtime import Runtime

HEADER = b"x-request-id"
VALID_ID = re.compile(rb"[!-~]{1,128}")  # printable ASCII, no space
MODEL_PARAMS = ("name", "model_name")  # path parameters that name a model


# a new id: 128 random bits in 32 hex digits, from a generator seeded by the system
# per process (a forked child reseeds): a uuid4 per request cost a system call. Ids are
# not secrets, but say nothing (as a count would) of how many requests came before.
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


def request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == HEADER:
            if VALID_ID.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return f"{_random.getrandbits(128):032x}"


def relative(location: bytes) -> bytes:
    """`http://host/path?query` -> `/path?query`; a relative `Location` as it is."""
    parts = urlsplit(location.decode("latin-1"))
    if not (parts.scheme or parts.netloc):
        return location
    # "//x" would name a host of its own: one leading slash
    path = "/" + parts.path.lstrip("/")
    return urlunsplit(("", "", path, parts.query, parts.fragment)).encode("latin-1")


def _relative_locations(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(n, relative(v) if n.lower() == b"location" else v) for n, v in headers]


def _template(route: BaseRoute) -> str:
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestObserver:
    def __init__(self, app: ASGIApp, runtime: Runtime, routes: list[BaseRoute]):
        self.app = app
        self.runtime = runtime
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        self.runtime.in_flight += 1
        context = RequestContext(request_id(scope))
        token: Token[RequestContext | None] | None = current.set(context)
        header = (HEADER, context.id.encode("ascii"))
        status = 500  # if the app raises before answering, the server answers 500
        complete = False

        async def observed(message: Message) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                if 300 <= status < 400:
                    headers = _relative_locations(headers)
                # a new list: a response object's own headers stay untouched
                message = {**message, "headers": [*headers, header]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except Exception:
            if not complete:
                # the id stays set: the server's own log line about the error carries
                # it (each request runs in a task of its own)
                token = None
                raise
            # answered (the 500 of ServerErrorMiddleware, whose handler logged the
            # error): the connection stays usable for the client's next request
        except BaseException:
            token = None
            raise
        finally:
            self.runtime.in_flight -= 1
            self._record(scope, context, status, time.perf_counter() - started)
            if token is not None:
                current.reset(token)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket (session steps): a context for its whole life, so its log lines
        carry an id and the batchers see its key (auth notes it); no metrics or access
        log line (they count HTTP requests)."""
        token = current.set(RequestContext(request_id(scope)))
        try:
            await self.app(scope, receive, send)
        finally:
            current.reset(token)

    def _record(self, scope: Scope, context: RequestContext, status: int, seconds: float) -> None:
        route = scope.get("route")
        params: dict[str, Any] = scope.get("path_params", {})
        if route is None and status != 404:  # refused by a middleware before routing
            route, params = self._match(scope)
        template = UNMATCHED if route is None else _template(route)
        model = context.model or self._served(params)
        self.runtime.metrics.request(scope["method"], template, model, status, seconds)
        if self.runtime.settings.access_log:
            access_log.write(scope, template, model, status, seconds, context.id)

    def _match(self, scope: Scope) -> tuple[BaseRoute | None, dict[str, Any]]:
        for route in self.routes:
            match, child = route.matches(scope)
            if match != Match.NONE:
                return route, child.get("path_params", {})
        return None, {}

    def _served(self, params: dict[str, Any]) -> str:
        """A model named by a path parameter, if the registry serves it."""
        registry = self.runtime.registry
        if registry is None or not params:
            return ""
        names = registry.names()
        for key in MODEL_PARAMS:
            value = params.get(key)
            if isinstance(value, str) and value in names:
                return value
        return ""


def _flat(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Routes one by one: recent FastAPI keeps an included router's routes inside a
    wrapper of its own (`original_router`)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flat(inner.routes)
        else:
            yield route


def install(app: FastAPI, runtime: Runtime) -> None:
    """Put the observer around the whole middleware stack FastAPI builds (on the first
    request, when every route is in place)."""
    build = app.build_middleware_stack

    def build_observed() -> ASGIApp:
        return RequestObserver(build(), runtime, list(_flat(app.router.routes)))

    app.build_middleware_stack = build_observed  # type: ignore[method-assign]
