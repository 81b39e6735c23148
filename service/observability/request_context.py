"""What is known about the request being served, for logs and metrics, without
passing it through every call: its id (every log line of the request carries it) and
the model it turned out to use (a label of the request's metrics).

The HTTP layer starts a context per request; the dataplane notes the model once it
has resolved one from the registry, whichever protocol asked.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class RequestContext:
    id: str
    model: str = ""  # a served model's name, once resolved
    owner: str = ""  # the name of the API key that sent it ("" with keys off)


current: ContextVar[RequestContext | None] = ContextVar("request", default=None)


def note_model(name: str) -> None:
    """The request uses model `name` (a name from the registry: label values stay
    bounded). Outside a request, nothing happens."""
    context = current.get()
    if context is not None:
        context.model = name


def request_id() -> str | None:
    context = current.get()
    return None if context is None else context.id


def note_owner(name: str) -> None:
    context = current.get()
    if context is not None:
        context.owner = name


def current_owner() -> str:
    """Who sent the request being served (for fair scheduling); "" outside a request."""
    context = current.get()
    return "" if context is None else context.owner
