"""SERVICE_MAX_CONNECTIONS' bookkeeping: who gives way, who is refused, and how the cap
is fitted under the open-file limit (the sockets themselves: test_slow_clients.py)."""

from __future__ import annotations

import json
import logging
import resource

import pytest

from service.api.connections import cap as connection_cap
from service.api.connections.answers import raw_answer
from service.api.connections.cap import FD_HEADROOM, ConnectionCap, Tally, fit

pytestmark = pytest.mark.unit


class Conn:
    def __init__(self, name: str):
        self.name = name
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True

    def __repr__(self) -> str:
        return self.name


def test_at_the_cap_the_connection_waiting_longest_gives_way() -> None:
    cap = ConnectionCap(3, 1)
    a, b, c, d = Conn("a"), Conn("b"), Conn("c"), Conn("d")
    for conn in (a, b, c):
        assert cap.admit(conn) is cap.main
    cap.main.waits(b, True)  # b idles first, then a; c is busy
    cap.main.waits(a, True)
    assert cap.admit(d) is cap.main
    assert b.evicted and not a.evicted and not c.evicted
    assert cap.main.members == {a, c, d}
    cap.main.waits(a, False)  # a's next request arrived: it no longer gives way
    cap.main.waits(d, True)
    e = Conn("e")
    assert cap.admit(e) is cap.main and d.evicted and not a.evicted


def test_when_every_connection_is_busy_new_ones_go_to_the_probe_band_then_are_refused() -> None:
    cap = ConnectionCap(2, 2)
    busy = [Conn(f"busy{i}") for i in range(2)]
    for conn in busy:
        assert cap.admit(conn) is cap.main
    probe1, probe2, probe3 = Conn("p1"), Conn("p2"), Conn("p3")
    assert cap.admit(probe1) is cap.probes
    assert cap.admit(probe2) is cap.probes
    assert cap.admit(probe3) is None  # both probe connections have a request in progress
    cap.probes.waits(probe1, True)
    assert cap.admit(probe3) is cap.probes and probe1.evicted
    cap.main.leave(busy[0])
    assert cap.admit(Conn("next")) is cap.main


def test_a_member_that_left_never_waits_again() -> None:
    cap = ConnectionCap(1, 0)
    a = Conn("a")
    cap.admit(a)
    cap.main.leave(a)
    cap.main.waits(a, True)
    assert not cap.main.waiting and not cap.main.members


def test_the_cap_is_lowered_under_the_open_file_limit(caplog: pytest.LogCaptureFixture) -> None:
    assert fit(1000, 32, 20_000) == 1000
    with caplog.at_level(logging.WARNING, logger="service"):
        assert fit(1000, 32, 1024) == 1024 - FD_HEADROOM - 32
    assert "SERVICE_MAX_CONNECTIONS 1000 lowered to 736" in caplog.text
    with pytest.raises(ValueError, match="no room for client connections"):
        fit(1000, 32, FD_HEADROOM + 32)


def test_the_soft_open_file_limit_is_raised_to_the_hard_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = {resource.RLIMIT_NOFILE: (1024, 8192)}
    monkeypatch.setattr(resource, "getrlimit", lambda which: limits[which])
    monkeypatch.setattr(resource, "setrlimit", lambda which, value: limits.update({which: value}))
    assert connection_cap.raise_open_files_limit() == 8192
    assert limits[resource.RLIMIT_NOFILE] == (8192, 8192)


def test_refusals_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    tally = Tally(interval=3600)
    with caplog.at_level(logging.WARNING, logger="service"):
        for _ in range(1000):
            tally.add("408 headers late")
    assert caplog.text.count("connections refused or cut") == 1
    assert tally.counts["408 headers late"] == 999  # waiting for the next line


def test_answers_written_by_the_connection_have_the_error_shape_of_the_path() -> None:
    answer = raw_answer(503, "too_many_connections", "full", "/v1/models")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"connection: close" in head and b"retry-after: 1" in head
    assert f"content-length: {len(body)}".encode() in head
    assert json.loads(body) == {"error": {"code": "too_many_connections", "message": "full"}}
    v2 = raw_answer(408, "request_timeout", "late", "/v2/models/m/infer")
    assert json.loads(v2.partition(b"\r\n\r\n")[2]) == {"error": "late"}
