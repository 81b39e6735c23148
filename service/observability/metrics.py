"""Prometheus metrics: every definition, in one registry per app (several apps in one
process, as in the tests, never share a series). No web framework here: the HTTP
layer, the batchers, the engines and the session store are handed what they record.

Labels are bounded: routes are templates (`/v1/sessions/{session_id}/step`), models
are names the registry served, statuses and operations are fixed sets; no raw path,
session id or request id ever becomes a label value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
PREFIX = "seq2seq_"
UNMATCHED = "unmatched"  # the route label of a request no route matched (404)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

# seconds: a cheap request takes ~0.2 ms, a full batch with probabilities ~2 s
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
QUEUE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
STORE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1)

# no `_created` sample beside every counter and histogram: it doubles a scrape, and
# Prometheus's text format has no use for it (process-wide, as prometheus_client has it)
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class BatchObserver:
    """What one batcher (one model and operation) records."""

    rows: Histogram  # rows per graph call
    waited: Histogram  # seconds from a job's enqueue to the start of its batch


@dataclass(frozen=True)
class QueueState:
    """One batcher (a model's operation) at scrape time: rows waiting, and its batches
    and rows since it started."""

    model: str
    operation: str
    queued_rows: int
    batches: int
    rows: int


@dataclass(frozen=True)
class ModelState:
    name: str
    version: int
    loaded: bool  # False: the version failed to load
    load_seconds: float | None = None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        http = ["method", "route", "model", "status"]
        self.http_requests = Counter(
            PREFIX + "http_requests", "HTTP requests answered", http, registry=r
        )
        self.http_duration = Histogram(
            PREFIX + "http_request_duration_seconds",
            "time from a request's arrival to the end of its answer",
            http,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            PREFIX + "batch_rows",
            "rows (sequences or sessions) per batched graph call",
            ["model", "operation"],
            buckets=ROW_BUCKETS,
            registry=r,
        )
        self.batch_queue = Histogram(
            PREFIX + "batch_queue_seconds",
            "time a job waited from being queued to the start of its batch",
            ["model", "operation"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.decode_steps = Counter(
            PREFIX + "decode_steps",
            "decoder steps computed (one per output token of a row)",
            ["model"],
            registry=r,
        )
        self.active_sessions = Gauge(
            PREFIX + "active_sessions", "live sessions in the session store", registry=r
        )
        self.session_kv_cache = Counter(
            PREFIX + "session_kv_cache_lookups",
            "Transformer session requests that found their key/value caches kept by this "
            "process (hit) or built them from the prefix (miss)",
            ["result"],
            registry=r,
        )
        self.store_errors = Counter(
            PREFIX + "session_store_errors",
            "session store calls that failed, by operation and error code",
            ["operation", "error"],
            registry=r,
        )
        self.store_duration = Histogram(
            PREFIX + "session_store_duration_seconds",
            "session store call latency (lock: the wait to acquire it)",
            ["operation"],
            buckets=STORE_BUCKETS,
            registry=r,
        )
        self.connections_cut = Counter(
            PREFIX + "connections_cut",
            "connections refused or closed by the connection guards (api/http_protocol.py), "
            "by reason",
            ["reason"],
            registry=r,
        )
        self.model_loaded = Gauge(
            PREFIX + "model_loaded",
            "1: this model version is served; 0: it failed to load",
            ["model", "version"],
            registry=r,
        )
        self.model_load_seconds = Gauge(
            PREFIX + "model_load_seconds",
            "time taken to load and warm up this model version",
            ["model", "version"],
            registry=r,
        )
        # what to scale on (per pod, read at scrape time; docs/observability.md)
        self.queued_rows = Gauge(
            PREFIX + "queued_rows",
            "rows (sequences or sessions) waiting for a batch, by model and operation",
            ["model", "operation"],
            registry=r,
        )
        self.batch_fill = Gauge(
            PREFIX + "batch_fill_ratio",
            "rows per batched graph call over SERVICE_BATCH_MAX_ROWS, averaged over the "
            "batches since the previous scrape (NaN: none ran)",
            ["model", "operation"],
            registry=r,
        )
        self.in_flight = Gauge(
            PREFIX + "http_requests_in_flight",
            "HTTP requests received and not yet answered in full",
            registry=r,
        )
        self._scraped: dict[tuple[str, str], tuple[int, int]] = {}  # batches, rows
        self._http: dict[tuple[str, str, str, int], tuple[Counter, Histogram]] = {}

    def request(self, method: str, route: str, model: str, status: int, seconds: float) -> None:
        key = (method, route, model, status)
        children = self._http.get(key)
        if children is None:  # labels() takes a lock and builds a tuple: once per series
            if method not in HTTP_METHODS:
                method = "other"  # clients choose methods: keep the label set bounded
            labels = (method, route, model, str(status))
            children = self.http_requests.labels(*labels), self.http_duration.labels(*labels)
            self._http[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def batcher(self, model: str, operation: str) -> BatchObserver:
        return BatchObserver(
            self.batch_rows.labels(model, operation), self.batch_queue.labels(model, operation)
        )

    def decoder(self, model: str) -> Counter:
        return self.decode_steps.labels(model)

    def models(self, states: Iterable[ModelState]) -> None:
        """The served and refused versions now (versions unloaded since disappear)."""
        self.model_loaded.clear()
        self.model_load_seconds.clear()
        for s in states:
            version = str(s.version)
            self.model_loaded.labels(s.name, version).set(1 if s.loaded else 0)
            if s.load_seconds is not None:
                self.model_load_seconds.labels(s.name, version).set(s.load_seconds)

    def sessions(self, count: int | None) -> None:
        """None: the store could not be asked (NaN rather than a stale number)."""
        self.active_sessions.set(math.nan if count is None else count)

    def queues(self, states: Iterable[QueueState], max_rows: int) -> None:
        """The batchers now (those of versions unloaded since disappear)."""
        self.queued_rows.clear()
        self.batch_fill.clear()
        scraped: dict[tuple[str, str], tuple[int, int]] = {}
        for q in states:
            key = (q.model, q.operation)
            batches, rows = self._scraped.get(key, (0, 0))
            ran = q.batches - batches
            fill = (q.rows - rows) / (ran * max_rows) if ran > 0 else math.nan
            self.queued_rows.labels(*key).set(q.queued_rows)
            self.batch_fill.labels(*key).set(fill)
            scraped[key] = q.batches, q.rows
        self._scraped = scraped

    def render(self) -> bytes:
        return generate_latest(self.registry)
