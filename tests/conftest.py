from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
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


CLUSTER_USERS = ("tests/contract", "tests/integration/test_redis_cluster.py")


def pytest_configure(config: pytest.Config) -> None:
    """While the tests are collected (~15 s of imports): make the Redis Cluster in the
    background if the paths asked for include a test that uses it (six processes and a
    replica sync: ~2 s of waiting, not of CPU; the contract's first cluster test comes
    third). Deselected by -k or -m, it idles until the end."""
    if config.option.collectonly:
        return
    root = config.rootpath
    asked = [str(Path(a.split("::")[0]).resolve()) for a in config.args] or [str(root)]
    users = [str(root / u) for u in CLUSTER_USERS]
    if any(u.startswith(a) or a.startswith(u) for a in asked for u in users):
        threading.Thread(target=_start_quietly, args=(CLUSTER,), daemon=True).start()


def _start_quietly(shared: SharedRedis) -> None:
    """A failure here is raised again where a test asks for it (SharedRedis.get starts
    it then)."""
    with contextlib.suppress(Exception):
        shared.get()


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
