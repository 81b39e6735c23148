"""Session ids are bearer secrets: the access log shows a short hash instead.

uvicorn logs each request as `client - "METHOD path HTTP/x" status`; this filter
rewrites the path's session id to the same `~hash` the service's own log lines use, so
a session can still be followed through the log without the log granting access.
"""

from __future__ import annotations

import logging
import re

from service.sessions.base import log_id

SESSION_PATH = re.compile(r"^(/v1/sessions/)([^/?#]+)")


def redact(path: str) -> str:
    return SESSION_PATH.sub(lambda m: m.group(1) + log_id(m.group(2)), path)


class RedactSessionIds(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact(args[2]), args[3], args[4])
        return True


def install() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSessionIds) for f in access.filters):
        access.addFilter(RedactSessionIds())
