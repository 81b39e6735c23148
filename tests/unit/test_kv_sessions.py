"""The per-process key/value caches of Transformer sessions (service/dataplane/kv_sessions.py):
used only for the revision and prefix they were kept for, bounded in bytes."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter

from service.dataplane.kv_sessions import KvSessions
from service.sessions.store import StoredSession

pytestmark = pytest.mark.unit


def session(sid: str, tokens: list[float], revision: int) -> StoredSession:
    so_far = np.asarray(tokens, np.float32)
    position = np.asarray([len(tokens)], np.float32)
    return StoredSession(
        id=sid,
        model="m",
        version=1,
        steps=len(tokens),
        states=(so_far, position),
        next_token=None,
        created_at=0.0,
        memory=np.ones((3, 2), np.float32),
        revision=revision,
    )


def extended(saved: StoredSession, value: float) -> tuple[np.ndarray, ...]:
    """Prefix states with two cache arrays of 64 float32 (256 bytes each) in between."""
    cache = np.full((4, 16), value, np.float32)
    return (*saved.states, cache, saved.memory, cache)  # type: ignore[return-value]


def counter() -> Counter:
    return Counter("kv", "lookups", ["result"], registry=CollectorRegistry())


def test_a_kept_entry_answers_only_its_revision_and_prefix() -> None:
    lookups = counter()
    kv = KvSessions(1 << 20, lookups)
    saved = session("a", [1, 2], revision=3)
    kv.keep(saved, extended(saved, 0.5))
    assert len(kv.carried(saved)) == 5  # hit
    assert len(kv.carried(saved.evolve(revision=4))) == 3  # another revision: rebuilt
    # the same id and revision, another prefix (deleted and created again): not used
    assert len(kv.carried(session("a", [1, 7], revision=3))) == 3
    assert lookups.labels("hit")._value.get() == 1
    assert lookups.labels("miss")._value.get() == 2


def test_prefix_states_alone_are_not_kept_and_drop_what_was() -> None:
    kv = KvSessions(1 << 20)
    saved = session("a", [1], revision=1)
    kv.keep(saved, extended(saved, 0.5))
    assert len(kv) == 1
    later = saved.evolve(revision=2)
    kv.keep(later, (*later.states, later.memory))  # e.g. a beam search: prefix states
    assert len(kv) == 0 and kv.size == 0


def test_the_least_recently_used_go_first_and_the_bytes_stay_bounded() -> None:
    one = sum(a.nbytes for a in extended(session("x", [1], 1), 0.0))
    kv = KvSessions(2 * one)
    first, second, third = (session(s, [1], revision=1) for s in "abc")
    kv.keep(first, extended(first, 1.0))
    kv.keep(second, extended(second, 2.0))
    assert len(kv.carried(first)) == 5  # first is now the most recently used
    kv.keep(third, extended(third, 3.0))
    assert kv.size <= 2 * one
    assert len(kv.carried(second)) == 3  # pushed out
    assert float(kv.carried(first)[2][0, 0]) == 1.0
    assert float(kv.carried(third)[2][0, 0]) == 3.0
    kv.forget("a")
    assert len(kv.carried(first)) == 3 and kv.size == one


def test_kept_states_are_copies_not_views_of_a_batch() -> None:
    kv = KvSessions(1 << 20)
    saved = session("a", [1], revision=1)
    batch = np.zeros((8, 4, 16), np.float32)
    kv.keep(saved, (*saved.states, batch[0], saved.memory, batch[1]))  # type: ignore[arg-type]
    batch[:] = 9.0
    assert float(kv.carried(saved)[2][0, 0]) == 0.0
    assert kv.size < batch.nbytes


def test_zero_bytes_keeps_nothing() -> None:
    kv = KvSessions(0)
    saved = session("a", [1], revision=1)
    kv.keep(saved, extended(saved, 0.5))
    assert len(kv) == 0 and len(kv.carried(saved)) == 3
