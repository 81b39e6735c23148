"""Markdown table and PNG plot of one benchmark run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import peers
from bench.inprocess import Timing, XlaTiming
from bench.wrk import LoadResult


def _find(loads: list[LoadResult], name: str, c: int) -> LoadResult:
    return next(r for r in loads if r.name == name and r.connections == c)


def _check(ok: bool) -> str:
    return "met" if ok else "**missed**"


def write(
    out: Path,
    timings: list[Timing],
    same: bool,
    loads: list[LoadResult],
    extra: dict[str, Any],
    when: str,
    xla_timings: list[XlaTiming] | None = None,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# Benchmark results ({when})",
        "",
        "## In-process decoding (reverse model)",
        "",
        "| path | batch | ms per call | speed-up |",
        "|---|---|---|---|",
    ]
    base = {t.batch: t.ms_per_call for t in timings if t.name.startswith("tutorial")}
    for t in timings:
        lines.append(
            f"| {t.name} | {t.batch} | {t.ms_per_call:.3f} | {base[t.batch] / t.ms_per_call:.0f}x |"
        )
    xla1 = next((x for x in xla_timings or [] if x.batch == 1), None)
    if xla1 is not None:  # what the server runs by default once the bucket is compiled
        lines.append(
            f"| engine, XLA program (SERVICE_XLA=auto) | 1 | {xla1.xla_ms:.3f} | "
            f"{base[1] / xla1.xla_ms:.0f}x |"
        )
    lines += [
        "",
        f"Engine outputs equal the tutorial loop's: {same}.",
        "",
        "## HTTP (wrk, 1 thread, same uvicorn settings for both servers)",
        "",
        "| endpoint | connections | requests/s | p50 ms | p90 ms | p99 ms | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in loads:
        lines.append(
            f"| {r.name} | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.2f} | "
            f"{r.p90_ms:.2f} | {r.p99_ms:.2f} | {r.failed} |"
        )
    echo32, pred32 = _find(loads, "echo", 32), _find(loads, "predict", 32)
    if "peers" in extra:
        lines += [
            "",
            "## Peers: the same model decoded without the engine",
            "",
            *peers.rows(pred32, extra["peers"]),
            "",
            "Peer (a), bench/peer_tutorial.py: Keras `predict()` per step in a FastAPI "
            "handler. Peer (b), bench/peer_steps.py: encode, then one HTTP call per decoder "
            "step, the states in JSON both ways; wrk cannot run that loop, so peer (b) and "
            "`/predict` again are loaded by 32 Python client loops (bench/client_loops.py, "
            "one process, asyncio), whose own CPU shares this machine's cores as wrk's does. "
            "Latency is per sequence.",
        ]
    graph1 = next(t for t in timings if t.batch == 1 and t.name.startswith("engine"))
    # the engine as served by default: the XLA program once its bucket is compiled
    single = base[1] / (xla1.xla_ms if xla1 is not None else graph1.ms_per_call)
    echo64, sess64 = _find(loads, "echo", 64), _find(loads, "session step", 64)
    mem = extra["memory"]
    rows = [
        (
            "engine vs tutorial loop, one source"
            + (" (XLA; TF graph: " + f"{base[1] / graph1.ms_per_call:.0f}x)" if xla1 else ""),
            ">= 300x",
            f"{single:.0f}x",
            single >= 300,
        ),
        (
            "/predict rps vs echo, 32 connections",
            ">= 0.8x",
            f"{pred32.rps / echo32.rps:.2f}x",
            pred32.rps >= 0.8 * echo32.rps,
        ),
        (
            "/predict p99 vs echo p99, 32 connections",
            "<= 3x",
            f"{pred32.p99_ms / echo32.p99_ms:.2f}x",
            pred32.p99_ms <= 3 * echo32.p99_ms,
        ),
        (
            "session steps rps vs echo, 64 connections",
            ">= 0.7x",
            f"{sess64.rps / echo64.rps:.2f}x",
            sess64.rps >= 0.7 * echo64.rps,
        ),
        (
            "/predict answers differing from unbatched decoding (2,000 sources, 32 at a time)",
            "0",
            str(extra["predict_mismatches"]),
            extra["predict_mismatches"] == 0,
        ),
        (
            "sessions differing from an unbatched replay (64 concurrent, 20 steps each)",
            "0",
            str(extra["session_mismatches"]),
            extra["session_mismatches"] == 0,
        ),
        (
            "failed or wrong answers under load",
            "0",
            str(sum(r.failed for r in loads)),
            sum(r.failed for r in loads) == 0,
        ),
    ]
    pred1 = _find(loads, "predict", 1)
    rows.append(
        ("/predict p50 at 1 connection", "<= 0.6 ms", f"{pred1.p50_ms:.2f} ms", pred1.p50_ms <= 0.6)
    )
    rows.append(
        (
            "session step p99 vs echo p99, 64 connections",
            "<= 3x",
            f"{sess64.p99_ms / echo64.p99_ms:.2f}x",
            sess64.p99_ms <= 3 * echo64.p99_ms,
        )
    )
    keyed = [r for r in loads if r.name.startswith("predict, keys")]
    if keyed:
        ratio = keyed[0].rps / echo32.rps
        rows.append(
            (
                "/predict rps vs echo, API keys + JSON access logs, 32 connections",
                ">= 0.7x",
                f"{ratio:.2f}x",
                ratio >= 0.7,
            )
        )
    sockets = [r for r in loads if "WebSocket" in r.name]
    if sockets:
        ratio = sockets[0].rps / echo64.rps
        rows.append(
            (
                "session steps over WebSockets vs echo's HTTP rps, 64 connections",
                ">= 1.5x",
                f"{ratio:.2f}x",
                ratio >= 1.5,
            )
        )
        bad = extra.get("socket_mismatches", 0)
        rows.append(
            ("WebSocket sessions differing from HTTP steps (64 sessions)", "0", str(bad), bad == 0)
        )
    first = {"reverse": 1.8, "dates": 3.7, "memory": 0.8}  # 2026-11-21
    loaded = extra.get("load_seconds", {})
    for model, bar in first.items():
        if model in loaded:
            rows.append(
                (
                    f"load time, {model}",
                    f"<= {bar} s",
                    f"{loaded[model]:.2f} s",
                    loaded[model] <= bar,
                )
            )
    if "peers" in extra:
        rows += peers.targets(pred32, extra["peers"])
    lines += ["", "## Targets", "", "| target | bar | measured | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {_check(ok)} |" for a, b, c, ok in rows]
    lines += [
        "",
        "## Memory",
        "",
        f"{mem['sessions']:,} idle `reverse` sessions (state 2 x 128 float32 = "
        f"{mem['raw_state_bytes']} bytes raw): RSS {mem['rss_before_mb']:.1f} MB -> "
        f"{mem['rss_after_mb']:.1f} MB, **{mem['bytes_per_session']:,.0f} bytes per "
        f"session** ({mem['bytes_per_session'] * 10_000 / 2**20:.1f} MB per 10,000).",
        "",
    ]
    if "load_seconds" in extra:
        ready = extra["load_seconds"].get("start to /readyz 200")
        if ready is not None:
            lines += [f"Start to `/readyz` 200 with the default settings: {ready:.1f} s.", ""]
    if "budget" in extra:
        lines += [
            "## CPU per request by stage (in-process, bench/budget.py)",
            "",
            extra["budget"],
            "",
        ]
    text = "\n".join(lines)
    (out / "RESULTS.md").write_text(text)
    print(text)
    _plot(out / "bench.png", loads)


def _plot(path: Path, loads: list[LoadResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, style in (("echo", "o--"), ("predict", "s-"), ("session step", "D")):
        runs = sorted((r for r in loads if r.name == name), key=lambda r: r.connections)
        xs = [r.connections for r in runs]
        ax1.plot(xs, [r.rps for r in runs], style, label=name)
        ax2.plot(xs, [r.p50_ms for r in runs], style, label=f"{name} p50")
        ax2.plot(xs, [r.p99_ms for r in runs], style, alpha=0.5, label=f"{name} p99")
    ax1.set(
        xlabel="concurrent connections",
        ylabel="requests/s",
        title="Throughput",
        xscale="log",
        ylim=(0, None),
    )
    ax2.set(
        xlabel="concurrent connections", ylabel="ms", title="Latency", xscale="log", yscale="log"
    )
    for ax in (ax1, ax2):
        ax.set_xticks([1, 8, 32, 64], labels=["1", "8", "32", "64"])
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
