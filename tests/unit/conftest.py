from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.sessions.memory import MemorySessionStore
from tests import fakes


@pytest.fixture
def settings() -> Settings:
    return Settings(max_batch_size=4, max_sequence_length=6, max_decode_steps=10, max_sessions=3)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    store = MemorySessionStore(settings.session_ttl_seconds, settings.max_sessions)
    app = create_app(settings, registry=fakes.registry(), store=store)
    with TestClient(app) as c:
        yield c
