"""The redis-py client of a session store (one Redis, or a Redis Cluster), and the calls
through it: every failure a 503, every write optionally confirmed by replicas."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from service.errors import StoreUnavailable

log = logging.getLogger("service")

# What a store call can raise from the client: all of it means "Redis cannot answer
# now" (503). RedisClusterException (e.g. no node serves a slot) is not a RedisError.
FAILURES: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)

TIMEOUTS: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}
WAIT_MS = 1000  # how long a write waits for its replicas (wait_replicas > 0)


class Connection:
    """The client, and calls through it whose failures become StoreUnavailable (503,
    Retry-After: 1; the detail, address included, goes to the log only). With
    `wait_replicas` > 0, every write is followed on the same connection by `WAIT
    wait_replicas 1000`: acknowledged only once that many replicas of its node have it,
    so a failover that promotes one of them keeps it; unconfirmed within a second, 503
    (the change may or may not survive)."""

    def __init__(self, url: str, cluster: bool, wait_replicas: int = 0):
        self.url = url
        self.cluster = cluster
        self.wait_replicas = wait_replicas
        self.client: Any = cluster_client(url) if cluster else single(url)

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        log.warning("session store: redis at %s failed: %r", safe_url(self.url), exc)
        return StoreUnavailable("session store unavailable; retry shortly", retry_after=1)

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except FAILURES as exc:
            raise self.unavailable(exc) from exc

    def pipeline(self) -> Any:
        """Commands sent together, not as a transaction (a cluster's split by node)."""
        return self.client.pipeline() if self.cluster else self.client.pipeline(False)

    async def write(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a writing script; with `wait_replicas`, then WAIT on the same connection
        (EVAL, not EVALSHA: a replica promoted by a failover has no scripts loaded)."""
        if not self.wait_replicas:
            return await self.call(script, keys=keys, args=args)

        async def run_and_wait() -> Any:
            async with self.pipeline() as pipe:
                pipe.eval(script.script, len(keys), *keys, *args)
                # on a cluster, to the node that ran the script (same connection)
                node = self.client.get_node_from_key(keys[0]) if self.cluster else None
                where = {"target_nodes": node} if node is not None else {}
                pipe.execute_command("WAIT", self.wait_replicas, WAIT_MS, **where)
                return await pipe.execute()

        result, acknowledged = await self.call(run_and_wait)
        if int(acknowledged) < self.wait_replicas:
            log.warning(
                "session store: a write reached %s of %d replicas within %d ms",
                acknowledged,
                self.wait_replicas,
                WAIT_MS,
            )
            raise StoreUnavailable(
                "the session store did not confirm the change on its replicas in time "
                "(SERVICE_REDIS_WAIT_REPLICAS); it may not survive a failover: retry "
                "with the same Idempotency-Key",
                retry_after=1,
            )
        return result

    async def health(self) -> str | None:
        """None, or "unavailable"; on a cluster every master must answer."""
        where = {"target_nodes": self.client.PRIMARIES} if self.cluster else {}
        try:
            await asyncio.wait_for(self.client.ping(**where), timeout=2.0)
        except FAILURES + (TimeoutError,) as exc:
            log.warning("session store: redis at %s unavailable: %r", safe_url(self.url), exc)
            return "unavailable"
        return None

    async def close(self) -> None:
        await self.client.aclose()


def single(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=False,
        # after a Redis restart, every pooled connection is dead: without a retry each
        # would fail one request (503) first (measured: 503s for ~10 s after recovery
        # in `python -m bench faults`). One immediate retry on a fresh connection, for
        # connection errors only (a timed-out command may have run).
        health_check_interval=1,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        **TIMEOUTS,
    )


def cluster_client(urls: str) -> RedisCluster:
    """`urls`: one or more start-up nodes, comma-separated `redis://[user:pass@]host:port`
    (the first one's credentials are used for every node). The client follows MOVED and
    ASK and refreshes its slot map after errors; it does not retry a failed call itself
    (one retry, immediate): the caller answers 503 + Retry-After at once, rather than
    holding the request through a failover."""
    nodes, first = [], None
    for url in (u.strip() for u in urls.split(",") if u.strip()):
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(f"SERVICE_REDIS_URL: not a redis:// URL: {safe_url(url)!r}")
        nodes.append(ClusterNode(parts.hostname, parts.port or 6379))
        first = first or parts
    if first is None:
        raise ValueError("SERVICE_REDIS_URL: no start-up node given for the cluster")
    return RedisCluster(
        startup_nodes=nodes,
        username=unquote(first.username) if first.username else None,
        password=unquote(first.password) if first.password else None,
        ssl=first.scheme == "rediss",
        # a shard without a master (failover under way) fails its own calls, not all
        require_full_coverage=False,
        decode_responses=False,
        retry=Retry(NoBackoff(), 1),
        **TIMEOUTS,
    )


def safe_url(url: str) -> str:
    """The URL(s) without user name or password, for logs."""
    shown = []
    for one in url.split(","):
        parts = urlsplit(one.strip())
        if parts.username is None and parts.password is None:
            shown.append(one.strip())
        else:
            host = parts.netloc.rsplit("@", 1)[1]
            shown.append(urlunsplit(parts._replace(netloc=f"***@{host}")))
    return ",".join(shown)
