"""Shared pieces of the long-running benchmarks (soak, faults): a lean keep-alive HTTP/1.1
client (`client`), simulated clients and a recorder of every request (`workers`), figures
(`figures`: requests/s, counts by status, p50/p99) and the mixed operations (`mix`). The
redis-server of our own is the harness's (`tests.harness.RedisServer`).
"""

from bench.load.client import CONN, TIMEOUT, Conn, Reply, Status, TransportError
from bench.load.figures import counts, format_counts, ok_status, percentiles_ms
from bench.load.mix import PREDICT_PATH, Checked, expected_answers, predict, sources
from bench.load.workers import Event, Recorder, Servers, Worker

__all__ = [
    "CONN",
    "PREDICT_PATH",
    "TIMEOUT",
    "Checked",
    "Conn",
    "Event",
    "Recorder",
    "Reply",
    "Servers",
    "Status",
    "TransportError",
    "Worker",
    "counts",
    "expected_answers",
    "format_counts",
    "ok_status",
    "percentiles_ms",
    "predict",
    "sources",
]
