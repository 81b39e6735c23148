"""What goes away in a faults run's outage phase: the one Redis (stopped or paused), or
one master of a Redis Cluster (SIGKILLed; its replica takes over; the node is started
again and follows the new master as its replica, as an orchestrator would restart it)."""

from __future__ import annotations

import asyncio
import time

from tests.harness import RedisServer
from tests.harness.redis_cluster import RedisCluster


class RedisOutage:
    partial = False  # every session call fails while it lasts

    def __init__(self, redis: RedisServer, mode: str):
        self.redis = redis
        self.mode = mode  # "shutdown" (SIGTERM, then a new redis-server) or "pause"
        self.name = f"Redis {mode}"
        self.figures: list[tuple[str, str]] = []

    def where(self) -> str:
        return f"redis on port {self.redis.port}"

    async def stop(self) -> str:
        if self.mode == "shutdown":
            await asyncio.to_thread(self.redis.stop)
            return "redis shut down (SIGTERM)"
        self.redis.pause()
        return "redis paused (SIGSTOP)"

    async def start(self) -> str:
        if self.mode == "shutdown":
            await asyncio.to_thread(self.redis.start)
        else:
            self.redis.resume()
        return "redis back"


class MasterKill:
    partial = True  # only the killed master's sessions fail

    def __init__(self, cluster: RedisCluster):
        self.cluster = cluster
        self.name = "a Redis Cluster master killed"
        self.figures: list[tuple[str, str]] = []
        self.victim: RedisServer | None = None
        self.killed = 0.0

    def where(self) -> str:
        ports = ", ".join(str(n.port) for n in self.cluster.nodes)
        return f"a 6-node Redis Cluster (ports {ports})"

    async def stop(self) -> str:
        self.victim = self.cluster.masters()[0]
        self.killed = time.monotonic()
        self.cluster.kill_master(self.victim)
        await asyncio.to_thread(self.cluster.wait_promoted, self.victim)
        promoted = time.monotonic() - self.killed
        self.figures.append(("master killed -> its replica promoted (s)", f"{promoted:.2f}"))
        port = self.victim.port
        return f"master on port {port} SIGKILLed; its replica promoted after {promoted:.2f} s"

    async def start(self) -> str:
        assert self.victim is not None
        await asyncio.to_thread(self.victim.start)
        await asyncio.to_thread(self.cluster.wait_ok)
        rejoined = time.monotonic() - self.killed
        self.figures.append(("master killed -> back as the new replica (s)", f"{rejoined:.2f}"))
        return f"node on port {self.victim.port} started again: the new master's replica"
