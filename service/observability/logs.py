"""The server's log output: one handler on the root logger that every logger reaches
(the service's, uvicorn's, TensorFlow's, Python warnings), in one of two formats:

- text (default): uvicorn's `INFO:     message`, plus ` [request id]` on the lines
  written while a request is served; a message's control and other non-printing
  characters (line breaks included) written as Python escapes (`\\n`, `\\x1b`), so a
  record is one line and a client's value (a path, a header) cannot forge another;
- json (SERVICE_LOG_FORMAT=json): one JSON object per line with `time` (UTC, ISO
  8601), `level`, `logger`, `message`, `request_id` within a request, the access
  line's fields (service/api/middleware/access_log.py), and `exc_info` with a traceback.

The request id comes from a context variable (service/observability/request_context.py), so a line
written by a thread that is not serving a request (the compute thread, start-up,
shutdown) simply has none.
"""

from __future__ import annotations

import json
import logging
import sys
from copy import copy
from datetime import UTC, datetime
from typing import Literal, TextIO

import uvicorn.logging
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from service.config import Settings
from service.observability import stderr_relay
from service.observability.request_context import request_id

Format = Literal["text", "json"]
LOGGERS = ("service", "uvicorn", "uvicorn.error")  # ours and the server's: settings' level


class RequestIdFilter(logging.Filter):
    """On a handler, so that it sees every record, propagated ones included."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id()
        if rid is not None:
            record.request_id = rid
        return True


def printable(text: str) -> str:
    """`text` with every non-printing character (control characters, line and paragraph
    separators, format characters such as bidirectional overrides) as a Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class TextFormatter(logging.Formatter):
    """uvicorn's layout (`INFO:     message`, coloured on a terminal) and the request
    id; without uvicorn's copy of every record where there are no colours to add.

    The message is escaped (`printable`); a traceback, which follows on lines of its
    own, is left as Python wrote it."""

    def __init__(self, colours: bool = False) -> None:
        super().__init__("%(message)s")
        fmt = "%(levelprefix)s %(message)s"
        self._coloured = uvicorn.logging.DefaultFormatter(fmt, use_colors=True) if colours else None

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        message = printable(record.message)
        if message != record.message:
            # a copy: other handlers see the record as it was; and no coloured variant,
            # which uvicorn would format again from the unescaped arguments
            record = copy(record)
            record.message = message
            record.__dict__.pop("color_message", None)
        if self._coloured is not None:
            line = self._coloured.formatMessage(record)
        else:
            level = record.levelname
            line = f"{level}:{' ' * (8 - len(level))} {record.message}"
        rid = getattr(record, "request_id", None)
        return f"{line} [{rid}]" if rid else line


# the access line's fields (service/api/middleware/access_log.py), in their JSON order
ACCESS_LOGGER = "service.access"
ACCESS_FIELDS = ("method", "path", "route", "status", "duration_ms", "model", "client")


class JsonLines(JsonFormatter):
    """python-json-logger's JSON lines, with the access line (one per request) written
    directly: the same keys in the same order, at about a third of the CPU (the generic
    path walks every attribute of the record to find the extra ones)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name != ACCESS_LOGGER or record.exc_info or record.stack_info:
            return super().format(record)
        line = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        for name in ACCESS_FIELDS:
            line[name] = getattr(record, name)
        rid = getattr(record, "request_id", None)
        if rid is not None:
            line["request_id"] = rid
        line["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat()
        return json.dumps(line)


def json_formatter() -> JsonFormatter:
    return JsonLines(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        # uvicorn's lines carry an ANSI-coloured copy of their message
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def handler(fmt: Format, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) writing `fmt`, with request ids; text is
    coloured when the stream is a terminal."""
    target = sys.stderr if stream is None else stream
    out: logging.Handler = logging.StreamHandler(target)
    out.setFormatter(json_formatter() if fmt == "json" else TextFormatter(target.isatty()))
    out.addFilter(RequestIdFilter())
    return out


def configure(settings: Settings, relay_stderr: bool = True) -> None:
    """For the server process (service/server.py): before uvicorn starts, which then
    only sets its loggers' levels (it is given no logging config of its own). In JSON,
    with `relay_stderr`, what native code writes to stderr becomes JSON lines too
    (service/observability/stderr_relay.py)."""
    json_lines = settings.log_format == "json"
    stream = stderr_relay.start() if json_lines and relay_stderr else None
    root = logging.getLogger()
    root.handlers = [handler(settings.log_format, stream)]
    root.setLevel(logging.WARNING)  # other libraries: warnings and worse
    for name in LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(settings.log_level.upper())
    # warnings.warn() (e.g. Keras while loading) as log records, so as JSON too
    logging.captureWarnings(json_lines)
    # neither format shows a record's thread or process: not looked up per record
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
