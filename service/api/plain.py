"""The hot routes served by Starlette alone: a request to `/predict` or a session step
skips FastAPI's per-request machinery (its nested routers, dependency solving and
endpoint wrappers: about a third of the event loop's CPU per request; measured by
`python -m bench budget`, docs/performance.md).

Only an endpoint that asks nothing of FastAPI per request is served so: its parameters
are the `Request` and path parameters typed `str`, it returns a `Response` itself, and
its route has no dependencies. Such an endpoint behaves the same either way: path
parameters are matched by the same pattern, errors raised reach the same exception
handlers, and a wrong method still meets the FastAPI route behind it. The FastAPI route
stays in place for the OpenAPI schema (and for any request the plain one does not match).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import get_type_hints

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, APIRouter
from starlette.routing import Route


class PlainRoute(Route):
    """A copy of a FastAPI route, served by Starlette alone."""


def servable(route: APIRoute) -> bool:
    """Whether `route`'s endpoint needs nothing of FastAPI per request."""
    if route.dependencies or route.dependant.dependencies:
        return False
    hints = get_type_hints(route.endpoint)
    returned = hints.pop("return", None)
    if not (inspect.isclass(returned) and issubclass(returned, Response)):
        return False
    names = {p.name for p in route.dependant.path_params}
    for name in inspect.signature(route.endpoint).parameters:
        if hints.get(name) is Request:
            continue
        if name not in names or hints.get(name) is not str:
            return False
    return True


def _call(route: APIRoute) -> Callable[[Request], Awaitable[Response]]:
    endpoint: Callable[..., Awaitable[Response]] = route.endpoint
    (request_name,) = (name for name, hint in get_type_hints(endpoint).items() if hint is Request)

    async def plainly(request: Request) -> Response:
        request.scope["route"] = route  # as FastAPI notes it (the metrics' route label)
        return await endpoint(**{request_name: request}, **request.path_params)

    return plainly


def serve(app: FastAPI, routers: Iterable[APIRouter]) -> list[PlainRoute]:
    """Put a plain route in front of each servable route of `routers`, which must be the
    app's first routers (routes are tried in order: the plain copies keep theirs)."""
    plain: list[PlainRoute] = []
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and servable(route):
                methods = set(route.methods or ())
                copy = PlainRoute(route.path, _call(route), methods=list(methods))
                copy.methods = methods  # Starlette would add HEAD to a GET
                copy.name = route.name
                plain.append(copy)
    app.router.routes[0:0] = plain
    return plain
