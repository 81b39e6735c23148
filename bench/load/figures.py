"""Figures over recorded requests: counts by status, p50/p99."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from bench.load.client import Status
from bench.load.workers import Event


def ok_status(status: Status) -> bool:
    return isinstance(status, int) and 200 <= status < 300


def counts(events: Iterable[Event]) -> Counter[str]:
    return Counter(str(e.status) for e in events)


def format_counts(c: Counter[str]) -> str:
    if not c:
        return "-"
    return " ".join(f"{k}:{v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0])))


def percentiles_ms(events: Sequence[Event], qs: Sequence[float] = (50, 99)) -> list[float]:
    if not events:
        return [float("nan")] * len(qs)
    lat = np.fromiter((e.end - e.start for e in events), float, len(events)) * 1000
    return [float(x) for x in np.percentile(lat, qs)]
