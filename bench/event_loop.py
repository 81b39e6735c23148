"""How long one request can hold the event loop: the worst stall per route and input.

python -m bench.event_loop [--fakes]

A server process (the real app and model store; --fakes: the unit tests' numpy models)
runs a monitor task that wakes every millisecond and records the longest gap it saw
beyond that millisecond; `GET /_stall` answers it and starts afresh. Each case sends its
request a few times between two readings, so the figure is the worst time the loop was
not free while that request was handled (noise floor: the idle row). The last row polls
/healthz while ten ~4 KB gzip bodies (a V2 infer of 2,000,000 ones) upload at once.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.harness import ROOT, free_port, start_server, wait_ready

TICK = 0.001
V2_HEADER = "Inference-Header-Content-Length"


def compact(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def bomb() -> bytes:
    """3,984 bytes that inflate to 4,000,078: a V2 infer of 2,000,000 ones."""
    tensor = {"name": "tokens", "shape": [1, 2_000_000], "datatype": "INT64"}
    return gzip.compress(compact({"inputs": [{**tensor, "data": [1] * 2_000_000}]}))


# ---------------------------------------------------------------- server side


def serve(port: int, fakes: bool) -> None:
    import uvicorn
    from fastapi import FastAPI

    from service.app import create_app
    from service.config import Settings

    settings = Settings(access_log=False, log_level="warning", model_store=ROOT / "model_store")
    if fakes:
        sys.path.insert(0, str(ROOT))
        from tests import fakes as fake_models

        app: FastAPI = create_app(settings, registry=fake_models.registry())
    else:
        app = create_app(settings)
    worst = [0.0]
    monitor: list[asyncio.Task[None]] = []

    async def watch() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last - TICK)
            last = now

    async def stall() -> dict[str, float]:
        if not monitor:
            monitor.append(asyncio.create_task(watch()))
        seen, worst[0] = worst[0], 0.0
        return {"ms": seen * 1000}

    app.add_api_route("/_stall", stall)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- client side


@dataclass
class Case:
    name: str
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] | None = None


def cases(fakes: bool) -> list[Case]:
    model = "counter" if fakes else "reverse"
    ones = [1] * 2_000_000
    v2 = f"/v2/models/{model}/infer"
    rows, steps = 256, (128 if fakes else 20)  # x classes: at most 262,144 probabilities
    big = {
        "inputs": [{"name": "tokens", "shape": [rows, 1], "datatype": "INT64", "data": [1] * rows}],
        "parameters": {"max_steps": steps},
        "outputs": [{"name": "tokens"}, {"name": "probabilities"}],
    }
    raw = bytes(4_000_000)
    binary_head = compact(
        {
            "inputs": [
                {
                    "name": "tokens",
                    "shape": [1, 1_000_000],
                    "datatype": "INT32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )
    legal = {"name": "tokens", "shape": [64, 1000], "datatype": "INT64", "data": [[1] * 1000] * 64}
    native_big = {"inputs": [[1]] * rows, "max_steps": steps, "return_probabilities": True}
    as_binary = {**big, "parameters": {"max_steps": steps, "binary_data_output": True}}
    return [
        Case("idle (noise floor)", "GET", "/_stall"),
        Case("GET /healthz", "GET", "/healthz"),
        Case("v2 small JSON infer", "POST", v2, compact({"inputs": [legal | {
            "shape": [1, 3], "data": [1, 2, 3]}]})),
        Case("v2 gzip 3,984 B -> 4 MB (2M ones)", "POST", v2, bomb(), {"Content-Encoding": "gzip"}),
        Case("v2 JSON 4 MB (2M ones)", "POST", v2, compact({"inputs": [{
            "name": "tokens", "shape": [1, 2_000_000], "datatype": "INT64", "data": ones}]})),
        Case("v2 JSON 4 MB, data before shape", "POST", v2, compact({"inputs": [{
            "data": ones, "name": "tokens", "shape": [1, 2_000_000], "datatype": "INT64"}]})),
        Case("v2 JSON 64x1000 tokens (work limit)", "POST", v2, compact({"inputs": [legal]})),
        Case("v2 binary 4 MB INT32", "POST", v2, binary_head + raw,
             {V2_HEADER: str(len(binary_head))}),
        Case("v2 answer 262k probabilities, JSON", "POST", v2, compact(big)),
        Case("v2 answer 262k probabilities, binary", "POST", v2, compact(as_binary)),
        Case("/predict small", "POST", f"/v1/models/{model}/predict",
             compact({"inputs": [[1, 2, 3]]})),
        Case("/predict JSON 4 MB (2M ones)", "POST", f"/v1/models/{model}/predict",
             compact({"inputs": [ones]})),
        Case("/predict answer 262k probabilities", "POST", f"/v1/models/{model}/predict",
             compact(native_big)),
        Case("v2 JSON 4 MB, 350k unknown keys", "POST", v2, b"{" + b",".join(
            b'"a%d":1' % i for i in range(350_000)) + b',"inputs":[]}'),
        Case("/predict JSON 3.6 MB, 600k bad tokens", "POST", f"/v1/models/{model}/predict",
             compact({"inputs": [[True] * 600_000]})),
        Case("TF :predict JSON 4 MB (2M ones)", "POST", f"/v1/models/{model}:predict",
             compact({"instances": [ones]})),
        Case("TF :predict answer 256 x 512 tokens", "POST", f"/v1/models/{model}:predict",
             compact({"instances": [[1]] * rows, "max_steps": 512 if fakes else 250})),
    ]  # fmt: skip


def measure(client: httpx.Client, case: Case, repeat: int = 3) -> tuple[float, int, float]:
    """(worst stall ms, last status, slowest answer ms)."""
    client.get("/_stall")
    status, slowest = 0, 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        answer = client.request(case.method, case.path, content=case.body, headers=case.headers)
        slowest = max(slowest, time.perf_counter() - start)
        status = answer.status_code
    return float(client.get("/_stall").json()["ms"]), status, slowest * 1000


def healthz_under_uploads(url: str, path: str, uploads: int = 10) -> tuple[float, int]:
    """The slowest /healthz while `uploads` gzip bombs are sent at once (and the count
    of /healthz calls made)."""
    body = bomb()

    def upload() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            c.post(path, content=body, headers={"Content-Encoding": "gzip"})

    threads = [threading.Thread(target=upload) for _ in range(uploads)]
    slowest, polls = 0.0, 0
    with httpx.Client(base_url=url, timeout=60) as probe:
        probe.get("/healthz")
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) or polls < 5:
            start = time.perf_counter()
            probe.get("/healthz")
            slowest = max(slowest, time.perf_counter() - start)
            polls += 1
    for t in threads:
        t.join()
    return slowest * 1000, polls


def run(fakes: bool, print_row: Callable[[str], Any] = print) -> None:
    port = free_port()
    command = ["bench.event_loop", "serve", "--port", str(port)]
    server = start_server(port, module=[*command, *(["--fakes"] if fakes else [])])
    url = server.url
    try:
        wait_ready(server, 120)
        with httpx.Client(base_url=url, timeout=120) as client:
            client.get("/_stall")
            time.sleep(0.2)
            print_row(f"| {'case':42} | worst loop stall | status | slowest answer |")
            print_row(f"|{'-' * 44}|-----------------:|-------:|---------------:|")
            for case in cases(fakes):
                worst, status, slowest = measure(client, case)
                row = f"| {case.name:42} | {worst:13.1f} ms | {status:6} | {slowest:11.1f} ms |"
                print_row(row)
        model = "counter" if fakes else "reverse"
        slowest, polls = healthz_under_uploads(url, f"/v2/models/{model}/infer")
        print_row(f"\n/healthz under ten gzip uploads: slowest {slowest:.1f} ms ({polls} polls)")
    finally:
        server.stop(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="measure", choices=["measure", "serve"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fakes", action="store_true", help="the unit tests' numpy models")
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.port, args.fakes)
    else:
        run(args.fakes)


if __name__ == "__main__":
    main()
