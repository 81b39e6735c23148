"""Per-request cost of the request observer (X-Request-ID, HTTP metrics, access log).

python -m bench.observability [--requests 10000] [--rounds 7]

All in-process (no sockets, no server), timed in this process's CPU time so that other
programs on the machine disturb the figures less; variants alternate round by round
and the median round counts:

1. the observer alone, around a trivial ASGI app: what it adds to any request;
2. one access log line, text and JSON, to /dev/null, beside uvicorn's own access line
   (which the service used before);
3. the whole app on GET /healthz and GET /v1/models: without the observer, with it
   and the access log off, and with the access log on in text and in JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn.logging
from fastapi import FastAPI
from rich.progress import Progress
from starlette.routing import Route

from service.api.middleware import access_log
from service.api.middleware.observe import RequestObserver
from service.app import create_app
from service.config import Settings
from service.inference.model.registry import Registry
from service.observability import logs
from service.progress import bars
from service.runtime import Runtime
from service.sessions.memory import MemorySessionStore

Message = dict[str, Any]
ASGI = Callable[[Message, Any, Any], Awaitable[None]]
NULL = open(os.devnull, "w")  # noqa: SIM115 - for the whole run


def _scope(path: str) -> Message:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _per_request(app: ASGI, path: str, n: int) -> float:
    scope = _scope(path)
    statuses: set[int] = set()

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    started = time.process_time()
    for _ in range(n):
        await app(dict(scope), receive, send)
    seconds = time.process_time() - started
    assert statuses == {200}, statuses
    return seconds / n


def _table(title: str, times: dict[str, list[float]], base: str | None) -> None:
    print(f"\n{title}")
    print(f"{'variant':<34} {'us':>8} {'per second':>11} {'added us':>9}")
    zero = statistics.median(times[base]) if base else 0.0
    for name, values in times.items():
        per = statistics.median(values)
        added = f"{(per - zero) * 1e6:+9.1f}" if base else ""
        print(f"{name:<34} {per * 1e6:>8.1f} {1 / per:>11,.0f} {added:>9}")


async def observer_alone(n: int, rounds: int, progress: Progress) -> None:
    route = Route("/thing/{id}", lambda request: None)

    async def trivial(scope: Message, receive: Any, send: Any) -> None:
        scope["route"] = route  # as the router leaves it
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    runtime = Runtime(settings=Settings(access_log=False), store=MemorySessionStore(60, 10))
    observed = RequestObserver(trivial, runtime, [route])
    times: dict[str, list[float]] = {"trivial app": [], "+ observer": []}
    for _ in progress.track(range(rounds), description="1. the observer alone: rounds"):
        times["trivial app"].append(await _per_request(trivial, "/thing/1", n * 5))
        times["+ observer"].append(await _per_request(observed, "/thing/1", n * 5))
    _table("1. the observer alone (a request id made, metrics recorded)", times, "trivial app")


def access_lines(n: int, rounds: int, progress: Progress) -> None:
    scope = _scope("/v1/sessions/abcdef/step")
    ours = logging.getLogger("service.access")
    theirs = logging.getLogger("uvicorn.access")
    uvicorn_handler = logging.StreamHandler(NULL)
    uvicorn_handler.setFormatter(
        uvicorn.logging.AccessFormatter(
            '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
        )
    )
    theirs.handlers = [uvicorn_handler]
    handlers = {"text": logs.handler("text", NULL), "json": logs.handler("json", NULL)}
    for logger in (ours, theirs):
        logger.propagate = False
        logger.setLevel(logging.INFO)

    def ours_as(fmt: str) -> Callable[[], None]:
        def write() -> None:
            ours.handlers = [handlers[fmt]]
            access_log.write(scope, "/v1/sessions/{session_id}/step", "m", 200, 0.001, "f" * 32)

        return write

    def uvicorn_line() -> None:
        args = ("127.0.0.1:5000", "POST", "/v1/sessions/~0123456789ab/step", "1.1", 200)
        theirs.info('%s - "%s %s HTTP/%s" %d', *args)

    variants = {"uvicorn's (before)": uvicorn_line}
    variants |= {"text": ours_as("text"), "json": ours_as("json")}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in progress.track(range(rounds), description="2. one access log line: rounds"):
        for name, write in variants.items():
            started = time.process_time()
            for _ in range(n):
                write()
            times[name].append((time.process_time() - started) / n)
    _table("2. one access log line", times, "uvicorn's (before)")


def _app(observer: bool, access: bool) -> FastAPI:
    app = create_app(Settings(access_log=access), registry=Registry({}))
    if not observer:
        del app.build_middleware_stack  # FastAPI's own: no observer around it
    return app


async def _lifespan(app: FastAPI) -> Callable[[], Awaitable[None]]:
    """Enter the app's lifespan; returns what leaves it."""
    queue: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.Event()
    await queue.put({"type": "lifespan.startup"})

    async def send(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    task = asyncio.create_task(app({"type": "lifespan"}, queue.get, send))
    await started.wait()

    async def leave() -> None:
        await queue.put({"type": "lifespan.shutdown"})
        await task

    return leave


async def whole_app(n: int, rounds: int, progress: Progress) -> None:
    access = logging.getLogger("service.access")
    variants = {
        "no observer": (_app(False, False), None),
        "observer, access log off": (_app(True, False), None),
        "observer + access log (text)": (_app(True, True), logs.handler("text", NULL)),
        "observer + access log (json)": (_app(True, True), logs.handler("json", NULL)),
    }
    leaving = [await _lifespan(app) for app, _ in variants.values()]
    logging.getLogger("service").setLevel(logging.INFO)
    for number, path in enumerate(("/healthz", "/v1/models"), 3):
        times: dict[str, list[float]] = {name: [] for name in variants}
        for app, _ in variants.values():
            await _per_request(app, path, 500)  # warm up
        described = f"{number}. the whole app, GET {path}: rounds"
        for _ in progress.track(range(rounds), description=described):
            for name, (app, handler) in variants.items():
                access.handlers = [handler] if handler is not None else []
                times[name].append(await _per_request(app, path, n))
        _table(f"{number}. the whole app, GET {path}", times, "no observer")
    for leave in leaving:
        await leave()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    # timed in this process's CPU time: no drawing thread, the bars move between rounds only
    with bars(auto_refresh=False) as progress:
        asyncio.run(observer_alone(args.requests, args.rounds, progress))
        access_lines(args.requests, args.rounds, progress)
        asyncio.run(whole_app(args.requests, args.rounds, progress))


if __name__ == "__main__":
    main()
