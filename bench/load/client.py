"""A lean keep-alive HTTP/1.1 client: one connection to one server, and its replies.

Why not httpx.AsyncClient: with 64 concurrent tasks on one client it managed ~120
requests/s here against ~2,600/s for this client on the same server (its pool lock
dominates), so it, not the server, would have been the thing measured.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

# a transport failure instead of an HTTP status
CONN = "conn"  # refused, reset, closed before a full answer
TIMEOUT = "timeout"
Status = int | str


class TransportError(Exception):
    """No complete HTTP answer: `kind` is CONN or TIMEOUT."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Conn:
    """One keep-alive HTTP/1.1 connection to one server, reopened after any failure or
    after `idle` seconds unused (before uvicorn's 5 s keep-alive timeout can close it
    under a request we are writing, which would make a non-idempotent request ambiguous)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0, idle: float = 3.0):
        self.host, self.port, self.timeout, self.idle = host, port, timeout, idle
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = 0.0

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        try:
            return await asyncio.wait_for(
                self._request(method, path, body, headers or {}), self.timeout
            )
        except TimeoutError:
            self.close()
            raise TransportError(TIMEOUT, f"no answer within {self.timeout} s") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            self.close()
            raise TransportError(CONN, f"{type(e).__name__}: {e}") from None

    async def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if self._writer is not None and time.monotonic() - self._used > self.idle:
            self.close()
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        answer: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            answer[name.strip().lower()] = value.strip()
        if "content-length" in answer:
            data = await reader.readexactly(int(answer["content-length"]))
        elif answer.get("transfer-encoding", "").lower() == "chunked":
            data = await _read_chunked(reader)
        elif status in (204, 304) or 100 <= status < 200:
            data = b""
        else:  # body delimited by the end of the connection
            data = await reader.read()
            answer["connection"] = "close"
        if answer.get("connection", "").lower() == "close":
            self.close()
        self._used = time.monotonic()
        return status, answer, data


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


@dataclass
class Reply:
    status: Status
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return isinstance(self.status, int) and 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)
