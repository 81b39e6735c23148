"""API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>` on every route but
health and docs (the pages, their assets and /openapi.json), when keys are configured
(SERVICE_API_KEYS, SERVICE_API_KEYS_FILE).

A WebSocket's upgrade request (session steps) needs a key the same way: browsers
cannot set headers on one, so a page cannot use it while keys are on.

A key's name (the `name:` prefix, or `key-` and a hash of the key) is who owns the
sessions it creates. Keys are compared in constant time and never logged; a plain
ASGI middleware, so an unauthenticated request costs no routing or body parsing.

Only the keys SERVICE_ADMIN_KEYS names may use the operator routes (/v1/admin/*):
the middleware notes whether the key is one of them and the admin router refuses the
others (403 `forbidden`), on the route itself, so no spelling of the path escapes the
check. The probes stay open, but answer their details (models, sessions) only to a
request that carries a valid key (`authenticated`).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.docs.pages import ASSETS_URL, DOCS_URL, OAUTH2_REDIRECT_URL, REDOC_URL
from service.api.errors import HttpError, error_response
from service.api.middleware.origins import split_list
from service.config import Settings
from service.observability.request_context import note_owner

OWNER = "service.owner"  # scope key: the name of the key that authenticated the request
ADMIN = "service.admin"  # scope key: whether that key is named in SERVICE_ADMIN_KEYS
ANONYMOUS = "service.anonymous"  # scope key: keys are on and a probe came without a valid one
PROBE_PATHS = frozenset({"/healthz", "/readyz"})
OPEN_PATHS = PROBE_PATHS | {DOCS_URL, OAUTH2_REDIRECT_URL, REDOC_URL}
OPEN_PATHS |= {"/openapi.json"}
OPEN_PREFIXES = (ASSETS_URL + "/",)  # files only: StaticFiles serves nothing outside its folder
STATS_PATHS = frozenset({"/metrics", "/v1/stats"})
MIN_KEY_LENGTH = 16


class Unauthorized(HttpError):
    status = 401
    code = "unauthorized"


class Forbidden(HttpError):
    status = 403
    code = "forbidden"


@dataclass(frozen=True)
class ApiKeys:
    keys: tuple[tuple[bytes, str], ...]  # (key, name)
    admins: frozenset[str] = frozenset()  # names of the keys allowed on /v1/admin/*

    def owner(self, presented: str) -> str | None:
        """The name of the matching key. Every key is compared, each in constant time,
        so the time taken says nothing about how close a guess was."""
        candidate = presented.encode()
        found = None
        for key, name in self.keys:
            if hmac.compare_digest(key, candidate):
                found = name
        return found


def _parse(line: str, where: str) -> tuple[bytes, str]:
    name, sep, key = line.rpartition(":")
    key = key.strip()
    name = name.strip() if sep else "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]
    if len(key) < MIN_KEY_LENGTH or not key.isprintable() or " " in key:
        raise ValueError(
            f"{where}: an API key must be at least {MIN_KEY_LENGTH} printable characters "
            "without spaces (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    if not name:
        raise ValueError(f"{where}: empty key name before ':'")
    return key.encode(), name


def load_keys(settings: Settings) -> ApiKeys | None:
    """The configured keys, or None when authentication is off. Raises ValueError
    (naming the setting and line, never the key) on a bad configuration."""
    entries = [
        _parse(item, f"SERVICE_API_KEYS item {n}")
        for n, item in enumerate(settings.api_keys.split(","), 1)
        if item.strip()
    ]
    if settings.api_keys_file is not None:
        path = Path(settings.api_keys_file)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise ValueError(f"SERVICE_API_KEYS_FILE {path}: {exc.strerror}") from None
        for n, line in enumerate(lines, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                entries.append(_parse(line.strip(), f"{path} line {n}"))
        if not entries:
            raise ValueError(f"SERVICE_API_KEYS_FILE {path}: no keys in the file")
    names = [name for _, name in entries]
    duplicate = {n for n in names if names.count(n) > 1}
    if duplicate:
        raise ValueError(f"API keys: names used twice: {', '.join(sorted(duplicate))}")
    admins = frozenset(split_list(settings.admin_keys))
    unknown = admins - set(names)
    if unknown:
        where = "no API keys are configured" if not names else "no API key has that name"
        raise ValueError(
            f"SERVICE_ADMIN_KEYS names {', '.join(sorted(unknown))}, but {where} (a key's "
            "name is its 'name:' prefix in SERVICE_API_KEYS or SERVICE_API_KEYS_FILE)"
        )
    return ApiKeys(tuple(entries), admins) if entries else None


def _presented(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            line: str = value.decode("latin-1").strip()
            scheme, _, credentials = line.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
        elif name == b"x-api-key":
            text: str = value.decode("latin-1").strip()
            if text:
                return text
    return None


class ApiKeyAuth:
    def __init__(self, app: ASGIApp, keys: ApiKeys, protect_stats: bool):
        self.app = app
        self.keys = keys
        self.open_paths = OPEN_PATHS if protect_stats else OPEN_PATHS | STATS_PATHS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path in PROBE_PATHS:
            presented = _presented(scope)
            owner = None if presented is None else self.keys.owner(presented)
            if owner is None:
                scope[ANONYMOUS] = True
            else:
                scope[OWNER] = owner
        # a WebSocket's upgrade request is checked as any request (refused: the HTTP answer)
        open_path = path in self.open_paths or path.startswith(OPEN_PREFIXES)
        if scope["type"] not in ("http", "websocket") or open_path:
            await self.app(scope, receive, send)
            return
        presented = _presented(scope)
        owner = None if presented is None else self.keys.owner(presented)
        if owner is None:
            challenge = 'Bearer realm="seq2seq-serving"'
            if presented is None:
                message = "an API key is required: send 'Authorization: Bearer <key>'"
            else:
                challenge += ', error="invalid_token"'
                message = "the API key is not valid"
            refusal = Unauthorized(
                f"{message} (or 'X-API-Key: <key>')",
                field="Authorization",
            )
            answer = error_response(refusal, scope["path"], {"WWW-Authenticate": challenge})
            await answer(scope, receive, send)
            return
        scope[OWNER] = owner
        scope[ADMIN] = owner in self.keys.admins
        note_owner(owner)  # the batchers take each key's queued work in turn
        await self.app(scope, receive, send)


def owner_of(request: HTTPConnection) -> str | None:
    """The key name the request was authenticated with (None: keys are off)."""
    owner: str | None = request.scope.get(OWNER)
    return owner


def authenticated(request: Request) -> bool:
    """False only for a request without a valid key while keys are on (the probes
    are the routes such a request reaches)."""
    return not request.scope.get(ANONYMOUS, False)


def require_admin(request: Request) -> None:
    """A dependency of the admin routes: with keys on, only SERVICE_ADMIN_KEYS' keys."""
    if OWNER in request.scope and not request.scope.get(ADMIN, False):
        raise Forbidden(
            "this API key may not use the admin routes (/v1/admin/*): only the keys "
            "named in SERVICE_ADMIN_KEYS may",
            field="Authorization",
        )
