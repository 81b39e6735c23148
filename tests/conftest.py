from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness import RedisServer, zygote
from tests.harness.redis_cluster import RedisCluster

# the suite's server and job processes are forked from a process that has imported
# TensorFlow and the service once (tests/harness/zygote.py)
zygote.enable()


class SharedRedis:
    """A redis-server (or cluster) started on first use (by a fixture, or by a server
    started early that needs its URL), closed at the end of the session at the latest."""

    made: list[SharedRedis] = []

    def __init__(self, start: Callable[[], Any] = lambda: RedisServer().start()) -> None:
        self.lock = threading.Lock()
        self.start = start
        self.server: Any = None
        SharedRedis.made.append(self)

    def get(self) -> Any:
        with self.lock:
            if self.server is None:
                self.server = self.start()
            return self.server

    def close(self) -> None:
        with self.lock:
            if self.server is not None:
                self.server.close()
                self.server = None


REDIS = SharedRedis()  # the session's
CLUSTER = SharedRedis(lambda: RedisCluster().start())  # the session's Redis Cluster


def pytest_sessionfinish() -> None:
    """After tests/integration/conftest.py's (hooks run last-registered first), so after
    the servers that use them have stopped."""
    for redis in SharedRedis.made:
        redis.close()
    zygote.disable()


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    server: RedisServer = REDIS.get()
    return server


@pytest.fixture(scope="session")
def redis_cluster() -> RedisCluster:
    """Shared: tests use keys of their own (a prefix each), and none kills a node (the
    failover tests start a cluster of their own)."""
    cluster: RedisCluster = CLUSTER.get()
    return cluster
