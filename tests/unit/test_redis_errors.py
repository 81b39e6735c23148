"""What a Redis failure tells clients (nothing internal) and the log (where, masked)."""

import logging
import time

import numpy as np
import pytest

from service.errors import StoreUnavailable
from service.sessions.redis import RedisSessionStore
from service.sessions.store import StoredSession, new_session_id
from tests.harness import free_port

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:p@ss@cache.internal:6379/0", "redis://***@cache.internal:6379/0"),
        ("redis://:s3cret@10.0.0.7:6380/2", "redis://***@10.0.0.7:6380/2"),
        ("rediss://cache.internal:6379", "rediss://cache.internal:6379"),
    ],
)
def test_the_logged_url_hides_user_and_password(url: str, shown: str) -> None:
    assert RedisSessionStore(url, 30, 10).safe_url() == shown


async def test_an_unreachable_redis_is_a_bare_503_and_a_detailed_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there
    store = RedisSessionStore(f"redis://app:p@ss@127.0.0.1:{port}/0", 30, 10)
    state = np.zeros(3, np.float32)
    session = StoredSession(new_session_id(), "m", 1, 0, (state,), None, time.time())
    with (
        caplog.at_level(logging.WARNING, logger="service"),
        pytest.raises(StoreUnavailable) as refused,
    ):
        await store.create(session)
    message = refused.value.message
    assert message == "session store unavailable; retry shortly"
    assert refused.value.retry_after == 1
    assert await store.health() == "unavailable"
    assert f"redis://***@127.0.0.1:{port}/0" in caplog.text and "p@ss" not in caplog.text
    await store.close()
