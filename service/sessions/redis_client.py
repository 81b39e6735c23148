"""The redis-py client of a session store: one Redis, or a Redis Cluster."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

# What a store call can raise from the client: all of it means "Redis cannot answer
# now" (503). RedisClusterException (e.g. no node serves a slot) is not a RedisError.
FAILURES: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError)

TIMEOUTS: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0}


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


def cluster(urls: str) -> RedisCluster:
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
