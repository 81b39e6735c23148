"""The WebSocket load generator of the benchmark (bench/socket_steps.py) against the shared
server, briefly: its check finds WebSocket steps equal to HTTP steps, and its load, in a
process of its own, counts steps with none failed."""

from __future__ import annotations

import pytest

from bench import socket_steps

pytestmark = pytest.mark.integration


def test_sockets_equal_http_steps(server_url: str) -> None:
    assert socket_steps.verify(server_url, sessions=4, steps=3) == 0


def test_load_counts_steps_and_none_fail(server_url: str) -> None:
    result = socket_steps.measure(server_url, sessions=8, seconds=1, warmup=0.2, check=False)
    assert result.name == socket_steps.NAME
    assert result.requests > 0 and result.rps > 0
    assert result.failed == 0
    assert 0 < result.p50_ms <= result.p99_ms
    assert result.client_cpu_s_per_1000 > 0
