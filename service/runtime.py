"""What the app holds while it runs; routes reach it through `deps`."""

from __future__ import annotations

from dataclasses import dataclass

from service.config import Settings
from service.dataplane.sessions import SessionOps
from service.inference.registry import Registry
from service.sessions.base import SessionStore


@dataclass
class Runtime:
    settings: Settings
    store: SessionStore
    registry: Registry | None = None  # None until every model is loaded
    sessions: SessionOps | None = None

    def attach(self, registry: Registry) -> None:
        self.registry = registry
        self.sessions = SessionOps(registry, self.store, self.settings)
