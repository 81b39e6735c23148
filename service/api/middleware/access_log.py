"""One access log line per request (SERVICE_ACCESS_LOG), written by the request
observer once the answer is sent, on the `service.access` logger.

Session ids are bearer secrets: the path shows the same `~hash` the service's own log
lines use instead, so a session can still be followed through the log without the log
granting access. The line's fields are also attributes of the record, so the JSON
format (SERVICE_LOG_FORMAT=json) has them as keys.

The path is written percent-encoded as a URL carries it (the server decoded it): a
space, a quote, a control character or a line break sent as `%20`, `%22`, `%1B`, `%0A`
stays that, so a client cannot forge a field of the line or a line of its own (the
text format also escapes whatever else a message holds: service/observability/logs.py).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, quote_from_bytes

from starlette.types import Scope

from service.observability.logs import ACCESS_LOGGER
from service.sessions.store import log_id

log = logging.getLogger(ACCESS_LOGGER)
SESSION_PATH = re.compile(r"^(/v1/sessions/)([^/?#]+)")
# what RFC 3986 lets a path and a query hold as they are (letters, digits and -._~ too)
PATH_SAFE = "/:@!$&'()*+,;="
QUERY_SAFE = PATH_SAFE + "?%"  # a query is logged as sent: its escapes stay as they are
# what `quote(path, safe=PATH_SAFE)` leaves as it is: letters, digits, "_.-~" and PATH_SAFE
AS_IS = re.compile(r"[A-Za-z0-9_.\-~" + re.escape(PATH_SAFE) + "]*")


def redact(path: str) -> str:
    return SESSION_PATH.sub(lambda m: m.group(1) + log_id(m.group(2)), path)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


def write(scope: Scope, route: str, model: str, status: int, seconds: float, rid: str) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    path = redact(scope["path"])
    if not AS_IS.fullmatch(path):  # the usual path needs no escape (quote is the slow part)
        path = quote(path, safe=PATH_SAFE)
    query = scope.get("query_string", b"")
    target = f"{path}?{quote_from_bytes(query, safe=QUERY_SAFE)}" if query else path
    method, client, ms = scope["method"], _client(scope), round(seconds * 1000, 3)
    shown = f" model={model}" if model else ""
    args = (client, method, target, scope.get("http_version", "1.1"), status, ms, shown)
    # made and handled directly: `log.info` would also walk the stack for the caller's
    # file and line, which neither format shows
    record = log.makeRecord(
        log.name,
        logging.INFO,
        __file__,
        0,
        '%s - "%s %s HTTP/%s" %d %.1f ms%s',
        args,
        None,
        # logs.ACCESS_FIELDS, and the request id
        extra={
            "method": method,
            "path": target,
            "route": route,
            "status": status,
            "duration_ms": ms,
            "model": model,
            "client": client,
            "request_id": rid,
        },
    )
    log.handle(record)
