"""Browser safety, before any work: a request whose `Origin` is not allowed gets 403,
and with SERVICE_ALLOWED_HOSTS set, a request for another `Host` gets 400.

Browsers send `Origin` on cross-site requests, including the "simple" ones (a form
POST, or `fetch` with `Content-Type: text/plain`) that CORS never preflights, so only
refusing them stops a web page from using the service through a visitor's browser.
Requests without `Origin` (curl, SDKs, servers) are not affected.

A WebSocket's upgrade request is checked the same way: browsers open WebSockets to any
site without CORS or a preflight, sending the page's `Origin`, so this check is what
stops cross-site WebSocket hijacking (refused: the HTTP answer, no upgrade).

A page served by this service itself (e.g. /docs) is same-origin: its `Origin` is the
request's own scheme and `Host`. That is trusted only when the host is an IP address,
`localhost`, or in SERVICE_ALLOWED_HOSTS: under DNS rebinding an attacker's name
resolves to this server, so an attacker's page is "same-origin" with its own name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import HttpError, error_response
from service.errors import shown

UNCHECKED_HOST_PATHS = frozenset({"/healthz", "/readyz"})  # probes address pods by IP
WEB_SCHEMES = {"ws": "http", "wss": "https"}  # a page's origin for a WebSocket's scheme


class OriginNotAllowed(HttpError):
    status = 403
    code = "origin_not_allowed"


class InvalidHost(HttpError):
    status = 400
    code = "invalid_host"


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _hostname(host: str) -> str:
    """'example.com:8000' -> 'example.com'; '[::1]:8000' -> '::1'."""
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_literal(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


def _matches(hostname: str, patterns: Iterable[str]) -> bool:
    hostname = hostname.lower().rstrip(".")
    for pattern in patterns:
        if pattern == "*" or hostname == pattern:
            return True
        if pattern.startswith("*.") and hostname.endswith(pattern[1:]):
            return True
    return False


class BrowserGuard:
    def __init__(self, app: ASGIApp, cors_origins: list[str], allowed_hosts: list[str]):
        self.app = app
        self.origins = {o.rstrip("/").lower() for o in cors_origins}
        self.hosts = [h.lower().rstrip(".") for h in allowed_hosts]

    def _same_origin(self, origin: str, scope: Scope, host: str) -> bool:
        scheme = scope.get("scheme", "http")
        scheme = WEB_SCHEMES.get(scheme, scheme)
        hostname = _hostname(host)
        trusted = _is_literal(hostname) or (self.hosts and _matches(hostname, self.hosts))
        return bool(trusted) and origin == f"{scheme}://{host}".lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = origin = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1").rstrip("/").lower()
        refusal: HttpError | None = None
        if (
            self.hosts
            and scope["path"] not in UNCHECKED_HOST_PATHS
            and not _matches(_hostname(host), self.hosts)
        ):
            refusal = InvalidHost(
                f"Host {shown(host)} is not served here (SERVICE_ALLOWED_HOSTS)", field="Host"
            )
        elif (
            origin
            and origin not in self.origins
            and "*" not in self.origins
            and not self._same_origin(origin, scope, host)
        ):
            allowed = ", ".join(sorted(self.origins)) or "none are configured"
            refusal = OriginNotAllowed(
                f"requests from web pages at {shown(origin)} are not allowed; allowed "
                f"origins (SERVICE_CORS_ORIGINS): {allowed}",
                field="Origin",
            )
        if refusal is not None:
            await error_response(refusal, scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive, send)
