"""Where the Redis stores put a session (partitions, hash tags) and how the cap is shared."""

import time
from collections import Counter

import pytest
from redis.exceptions import ClusterDownError, RedisClusterException, TryAgainError

from service.errors import StoreUnavailable
from service.sessions import redis_client
from service.sessions.redis import RedisSessionStore
from service.sessions.redis_keys import (
    PARTITIONS,
    PLACEMENT_TRIES,
    KeyLayout,
    id_in_partition,
    partition_cap,
    partition_of,
    placements,
)
from service.sessions.store import new_session_id

pytestmark = pytest.mark.unit


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes: the part between the first { and the next }."""
    start = key.index("{")
    return key[start + 1 : key.index("}", start)]


def test_every_key_of_a_session_shares_its_partitions_hash_slot_on_a_cluster() -> None:
    keys = KeyLayout("s2s:", tagged=True)
    sid = new_session_id()
    tag = f"p{partition_of(sid)}"
    names = [keys.session(sid), *keys.replays(sid), keys.lock(sid), keys.index(partition_of(sid))]
    assert {hash_tag(name) for name in names} == {tag}
    assert hash_tag(keys.owned("team-a")) != tag and "team-a" not in keys.owned("team-a")


def test_a_single_redis_keeps_the_names_sessions_had_before_the_partitions() -> None:
    keys = KeyLayout("s2s:", tagged=False)
    assert keys.session("abc") == "s2s:s:abc"
    assert keys.replays("abc") == ["s2s:r:abc", "s2s:rk:abc"]
    assert keys.lock("abc") == "s2s:lock:abc"
    assert len(set(keys.indexes())) == PARTITIONS  # no key that every request writes


def test_the_shares_of_the_cap_add_up_to_it() -> None:
    for cap in (1, 2, 63, 64, 65, 100, 100_000):
        assert sum(partition_cap(b, cap) for b in range(PARTITIONS)) == cap


def test_ids_spread_evenly_over_the_partitions() -> None:
    counts = Counter(partition_of(new_session_id()) for _ in range(64_000))
    assert len(counts) == PARTITIONS and min(counts.values()) > 800  # 1,000 each on average


def test_a_new_id_can_be_drawn_for_any_partition_quickly() -> None:
    started = time.perf_counter()
    for partition in range(PARTITIONS):
        assert partition_of(id_in_partition(partition)) == partition
    per_id = (time.perf_counter() - started) / PARTITIONS
    print(f"\nid_in_partition: {per_id * 1e3:.3f} ms per id")


def test_placements_keep_a_named_id_and_move_others_to_partitions_with_room() -> None:
    sid = new_session_id()
    assert list(placements(sid, 100_000, named=True)) == [
        (sid, partition_cap(partition_of(sid), 100_000))
    ]
    # below 64, a named id has room for one in every partition
    assert [cap for _, cap in placements(sid, 2, named=True)] == [
        max(1, partition_cap(partition_of(sid), 2))
    ]
    tried = list(placements(sid, 100_000, named=False))
    assert tried[0] == (sid, partition_cap(partition_of(sid), 100_000))
    assert (
        len(tried) == PLACEMENT_TRIES
        and len({partition_of(i) for i, _ in tried}) == PLACEMENT_TRIES
    )
    # a cap of 2: only partitions 0 and 1 have a share, and both are tried
    small = list(placements(sid, 2, named=False))
    assert sorted(partition_of(i) for i, _ in small) == [0, 1]
    assert all(cap == 1 for _, cap in small)


@pytest.mark.parametrize(
    "error",
    [
        RedisClusterException("no node serves slot 12182"),  # not a RedisError
        ClusterDownError("CLUSTERDOWN The cluster is down"),
        TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
    ],
)
async def test_cluster_errors_answer_503_with_retry_after(error: Exception) -> None:
    store = RedisSessionStore("redis://127.0.0.1:1", 30, 10, cluster=True)

    async def fails(*args: object, **kwargs: object) -> None:
        raise error

    store._touch = fails
    with pytest.raises(StoreUnavailable) as refused:
        await store.get(new_session_id())
    assert refused.value.retry_after == 1
    await store.close()


@pytest.mark.parametrize(
    ("urls", "problem"),
    [
        ("http://10.0.0.1:6379", "not a redis:// URL: 'http://10.0.0.1:6379'"),
        ("redis://:s3cret@", "not a redis:// URL: 'redis://***@'"),  # no host; password masked
        (" , ", "no start-up node given for the cluster"),
    ],
)
def test_a_bad_cluster_url_is_refused_naming_the_setting(urls: str, problem: str) -> None:
    with pytest.raises(ValueError) as refused:
        redis_client.cluster_client(urls)
    assert str(refused.value) == f"SERVICE_REDIS_URL: {problem}"


def test_cluster_start_up_nodes_and_credentials_come_from_the_urls() -> None:
    client = redis_client.cluster_client("redis://app:p%40ss@10.0.0.1:7000, redis://10.0.0.2")
    nodes = [(n.host, n.port) for n in client.startup_nodes]
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 6379)]
    kwargs = client.get_connection_kwargs()
    assert (kwargs["username"], kwargs["password"]) == ("app", "p@ss")  # unquoted
