"""Drive wrk (a C load generator, one thread, its own process) and read its figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Every script shares this tail: count bad answers per thread, print one JSON line.
LUA_TAIL = r"""
bad = 0
threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local b = 0
  for _, t in ipairs(threads) do b = b + t:get("bad") end
  local e = summary.errors
  io.write(string.format(
    'JSON {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"bad":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    b, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
"""


def post_script(
    path: str, body: str, expected: str | None, headers: dict[str, str] | None = None
) -> str:
    """POST the same body every time; count answers that differ from `expected`."""
    check = (
        f"response = function(status, headers, body)\n"
        f"  if status ~= 200 or body ~= {json.dumps(expected)} then bad = bad + 1 end\nend\n"
        if expected is not None
        else "response = function(status, headers, body)\n"
        "  if status ~= 200 then bad = bad + 1 end\nend\n"
    )
    return (
        f'wrk.method = "POST"\nwrk.path = {json.dumps(path)}\n'
        f"wrk.body = {json.dumps(body)}\n"
        f'wrk.headers["Content-Type"] = "application/json"\n'
        + "".join(
            f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items()
        )
        + f"{check}{LUA_TAIL}"
    )


def sessions_script(session_ids: list[str]) -> str:
    """Round-robin over sessions, each request one value (0..4) for one session."""
    ids = ", ".join(json.dumps(s) for s in session_ids)
    return (
        f"local ids = {{{ids}}}\nlocal i = 0\n"
        'local headers = {["Content-Type"] = "application/json"}\n'
        "request = function()\n  i = i + 1\n"
        "  local id = ids[(i % #ids) + 1]\n"
        "  local body = string.format('{\"inputs\": [%d]}', i % 5)\n"
        '  return wrk.format("POST", "/v1/sessions/" .. id .. "/step", headers, body)\nend\n'
        "response = function(status, headers, body)\n"
        "  if status ~= 200 then bad = bad + 1 end\nend\n" + LUA_TAIL
    )


@dataclass
class LoadResult:
    name: str
    connections: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    failed: int


def wrk(
    url: str,
    script: str,
    connections: int,
    seconds: int,
    name: str,
    warm_up: int = 2,
    timeout: int = 10,
) -> LoadResult:
    """Load `url` for `seconds` after `warm_up` seconds of the same load (discarded);
    a request unanswered after `timeout` seconds counts as an error."""
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: install it with `apt-get install wrk` (make bench does)")
    if warm_up:
        wrk(url, script, connections, warm_up, name, warm_up=0, timeout=timeout)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{int(seconds)}s",
                "--timeout",
                f"{timeout}s",
                "-s",
                f.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(f.name)
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    data = json.loads(line[5:])
    return LoadResult(
        name=name,
        connections=connections,
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        failed=data["socket_errors"] + data["non2xx"] + data["bad"],
    )


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")
