"""Server processes sharing one Redis (the Redis session backend): replicas behind no
load balancer, each on its own port, which it keeps when it is started again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.harness.ports import free_port
from tests.harness.redis import RedisServer
from tests.harness.server import Server, start_server, wait_ready


def redis_env(redis: RedisServer, **extra: str) -> dict[str, str]:
    """The settings of a replica on `redis`, and `extra` SERVICE_* settings."""
    return {"SERVICE_SESSION_BACKEND": "redis", "SERVICE_REDIS_URL": redis.url, **extra}


class Replica:
    """`server`: one already started with `env` (started early), which it takes over."""

    def __init__(self, env: dict[str, str], log: Path | None = None, server: Server | None = None):
        self.env = env
        self.port = server.port if server is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.server = server

    def start(self) -> Replica:
        """Start (again, on the same port), not waited for: see `ready`."""
        self.server = start_server(self.port, self.env, log=self.log_path)
        return self

    def ready(self, timeout: float = 120) -> Replica:
        assert self.server is not None
        wait_ready(self.server, timeout)
        return self

    def alive(self) -> bool:
        return self.server is not None and self.server.alive()

    @property
    def pid(self) -> int:
        assert self.server is not None
        return self.server.process.pid

    def kill(self) -> None:
        """SIGKILL, mid-stream, without a clean shutdown."""
        assert self.server is not None
        self.server.kill()
        self.server = None

    def log(self) -> str:
        assert self.server is not None
        return self.server.output()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def start_all(group: list[Replica], timeout: float = 120) -> None:
    """Start every replica that is not running at once (their TensorFlow loads overlap),
    then wait until each is ready."""
    for r in group:
        if not r.alive():
            r.stop()  # a killed or exited one: its log closed
            r.start()
    for r in group:
        r.ready(timeout)


@contextmanager
def replicas(
    env: dict[str, str], n: int = 2, logs: Path | None = None, timeout: float = 120
) -> Iterator[list[Replica]]:
    """`n` replicas with `env` (see `redis_env`), started together, ready, stopped on exit.
    `logs`: a directory to keep their output in (replica-0.log, ...)."""
    group = [Replica(env, None if logs is None else logs / f"replica-{i}.log") for i in range(n)]
    try:
        start_all(group, timeout)
        yield group
    finally:
        stop_all(group)


def stop_all(group: list[Replica]) -> None:
    """SIGTERM to every one first (their clean shutdowns overlap), then wait for each."""
    for r in group:
        if r.server is not None:
            r.server.terminate()
    for r in group:
        r.stop()
