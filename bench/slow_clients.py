"""Slow, idle and oversized clients against one server process: before and after the guards.

python -m bench.slow_clients [--baseline] [--header-mb 64] [--idle 5000] [--busy 1000]

The server runs the unit tests' numpy models (no TensorFlow, so its memory is the
server's own) with its open-file limit set to OPEN_FILES, as a smaller copy of the
20,000-descriptor machine the attacks were found on. --baseline: uvicorn as
`service.server.serve` configured it before (http="auto", no header bound, no timeouts, no
connection cap); otherwise `service.server.serve` with default settings.

1. Four connections each send `--header-mb` MB of a header that never ends: server RSS
   growth and what each connection got back.
2. `--idle` connections open and send half a request's headers, as fast as they can:
   /healthz meanwhile (status and latency), how many are open then, and how many are
   still open once the header timeout (plus 2 s) has passed since the last opened.
3. `--busy` connections each send a POST's headers and part of its body (requests in
   progress): /healthz latency, and what a new /v1/models request gets.
"""

from __future__ import annotations

import argparse
import resource
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.harness import ROOT, free_port, start_server, wait_ready

OPEN_FILES = 4096
PARTIAL = b"GET /v1/models HTTP/1.1\r\nHost: bench\r\nX-Slow: "
STALLED = b'POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Length: 1000\r\n\r\n{"inputs": '


def serve(port: int, baseline: bool) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    sys.path.insert(0, str(ROOT))
    import uvicorn

    from service.app import create_app
    from service.config import Settings
    from service.server import serve
    from tests import fakes

    settings = Settings(port=port, log_level="warning", access_log=False)
    app = create_app(settings, registry=fakes.registry())
    if baseline:
        uvicorn.run(app, port=port, log_level="warning", access_log=False, http="auto")
    else:
        serve(app, settings)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def is_open(sock: socket.socket) -> bool:
    """No end of stream (or reset) from the server yet; reads whatever it sent."""
    sock.settimeout(0)  # a socket with a timeout would wait for data before reading
    try:
        while True:
            if not sock.recv(65536):
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def probe(url: str, path: str = "/healthz") -> tuple[str, float]:
    start = time.perf_counter()
    try:
        status = str(httpx.get(url + path, timeout=5).status_code)
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return status, (time.perf_counter() - start) * 1000


def probes(url: str, n: int = 5) -> str:
    seen = [probe(url) for _ in range(n)]
    statuses = sorted({s for s, _ in seen})
    worst = max(ms for _, ms in seen)
    return f"/healthz x{n}: {', '.join(statuses)}; slowest {worst:.1f} ms"


def big_headers(port: int, pid: int, megabytes: int) -> None:
    before = rss_mb(pid)
    peak = [before]
    answers: list[bytes] = []

    def send() -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        chunk = b"a" * 65536
        try:
            sock.sendall(PARTIAL)
            for _ in range(megabytes * 16):
                sock.sendall(chunk)
            sock.settimeout(0.5)
            answers.append(sock.recv(64).split(b"\r\n")[0])
        except OSError as exc:
            answers.append(repr(exc).encode())
        finally:
            peak[0] = max(peak[0], rss_mb(pid))
            sock.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(
        f"1. 4 x {megabytes} MB unfinished header: RSS {before:.0f} MB -> {peak[0]:.0f} MB "
        f"(+{peak[0] - before:.0f} MB); answers: {sorted(set(answers))}"
    )


def idle_flood(url: str, port: int, n: int, wait: float) -> None:
    socks: list[socket.socket] = []
    failed = 0
    opening = threading.Event()
    seen: list[tuple[str, float]] = []

    def probing() -> None:
        while not opening.wait(0.1):
            seen.append(probe(url))

    thread = threading.Thread(target=probing)
    thread.start()
    start = time.monotonic()
    for _ in range(n):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(PARTIAL)
            socks.append(sock)
        except OSError:
            failed += 1
    opened = time.monotonic() - start
    opening.set()
    thread.join()
    counts = Counter(status for status, _ in seen)
    statuses = ", ".join(f"{status} x{times}" for status, times in sorted(counts.items()))
    worst = max((ms for _, ms in seen), default=float("nan"))
    print(f"2. {n} idle partial requests opened in {opened:.1f} s ({failed} failed to connect)")
    print(f"   /healthz while opening: {statuses}; slowest {worst:.1f} ms")
    print(f"   then: {probes(url)}; open now: {sum(map(is_open, socks))}")
    time.sleep(max(0.0, start + opened + wait - time.monotonic()))
    print(f"   {wait:.0f} s after the last: still open {sum(map(is_open, socks))}; {probes(url)}")
    for sock in socks:
        sock.close()


def busy(url: str, port: int, n: int) -> None:
    socks = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        sock.sendall(STALLED)
        socks.append(sock)
    time.sleep(0.5)  # every request reached its body read
    status, ms = probe(url, "/v1/models")
    print(f"3. {n} requests in progress: {probes(url, 20)}; new /v1/models: {status} ({ms:.1f} ms)")
    for sock in socks:
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="measure", choices=["measure", "serve"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--header-mb", type=int, default=64)
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--busy", type=int, default=1000)
    parser.add_argument("--header-timeout", type=float, default=10.0, help="the server's")
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args.port, args.baseline)
        return
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the client's sockets
    port = free_port()
    command = ["bench.slow_clients", "serve", "--port", str(port)]
    server = start_server(port, module=[*command, *(["--baseline"] if args.baseline else [])])
    proc, url = server.process, server.url
    try:
        wait_ready(server, 60)
        print("baseline (before)" if args.baseline else "guarded (after)")
        big_headers(port, proc.pid, args.header_mb)
        idle_flood(url, port, args.idle, args.header_timeout + 2)
        busy(url, port, args.busy)
        print(f"   server RSS at the end {rss_mb(proc.pid):.0f} MB")
    finally:
        server.stop(30)


if __name__ == "__main__":
    main()
