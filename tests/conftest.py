from __future__ import annotations

import threading

import pytest

from tests.harness import RedisServer, zygote

# the suite's server and job processes are forked from a process that has imported
# TensorFlow and the service once (tests/harness/zygote.py)
zygote.enable()


class SharedRedis:
    """A redis-server started on first use (by a fixture, or by a server started early
    that needs its URL), closed at the end of the session at the latest."""

    made: list[SharedRedis] = []

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.server: RedisServer | None = None
        SharedRedis.made.append(self)

    def get(self) -> RedisServer:
        with self.lock:
            if self.server is None:
                self.server = RedisServer().start()
            return self.server

    def close(self) -> None:
        with self.lock:
            if self.server is not None:
                self.server.close()
                self.server = None


REDIS = SharedRedis()  # the session's


def pytest_sessionfinish() -> None:
    """After tests/integration/conftest.py's (hooks run last-registered first), so after
    the servers that use them have stopped."""
    for redis in SharedRedis.made:
        redis.close()
    zygote.disable()


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    return REDIS.get()
