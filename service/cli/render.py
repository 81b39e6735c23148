"""Human output of the client commands: plain lines where one answer is one line,
rich tables where there are several."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from service.client import (
    ModelDetail,
    ModelList,
    ModelVersionInfo,
    PredictResponse,
    SessionInfo,
    StepResponse,
    TokenEvent,
)

PREVIEW = 4  # state values shown per tensor


def console() -> Console:
    # markup off: a model's text is printed as it is, "[...]" included
    return Console(markup=False, highlight=False, soft_wrap=True)


def sequence(tokens: Sequence[int | str] | str) -> str:
    return tokens if isinstance(tokens, str) else " ".join(str(t) for t in tokens)


def token(event: TokenEvent) -> str:
    """A streamed token as shown: its text (or vocabulary string, or id); quoted when it
    is blank (a space, an end-of-line end token)."""
    text = event.text if event.text is not None else str(event.token)
    return text if text.strip() else repr(text)


def _score(scores: list[float] | None, index: int) -> str:
    return f"{scores[index]:.4f}" if scores is not None and index < len(scores) else ""


def predict(answer: PredictResponse, inputs: Sequence[Sequence[int | str] | str]) -> Table | str:
    """One output: its line; else a table of input, output (the n best, ranked) and score."""
    if len(answer.outputs) == 1 and answer.sequences is None and answer.scores is None:
        line = sequence(answer.outputs[0])
        return line if answer.seed is None else f"{line}\nseed: {answer.seed}"
    columns = ["input", "output"]
    columns += ["#"] if answer.sequences is not None else []
    columns += ["score"] if answer.scores is not None else []
    table = Table(*columns, title=f"{answer.model} {answer.version}")
    for i, output in enumerate(answer.outputs):
        shown = sequence(inputs[i]) if i < len(inputs) else ""
        ranked = answer.sequences[i] if answer.sequences is not None else [output]
        scores = answer.scores[i] if answer.scores is not None else None
        for rank, candidate in enumerate(ranked):
            row = [shown if rank == 0 else "", sequence(candidate)]
            row += [str(rank + 1)] if answer.sequences is not None else []
            row += [_score(scores, rank)] if scores is not None else []
            table.add_row(*row)
    if answer.seed is not None:
        table.caption = f"seed: {answer.seed}"
    return table


def step(answer: StepResponse) -> str:
    lines = [answer.text if answer.text is not None else sequence(answer.outputs)]
    if answer.scores is not None:
        lines.append(f"score: {_score(answer.scores, 0)}")
    for rank, candidate in enumerate((answer.sequences or [])[1:], 2):
        scored = f" (score {_score(answer.scores, rank - 1)})" if answer.scores else ""
        lines.append(f"#{rank}: {sequence(candidate)}{scored}")
    if answer.seed is not None:
        lines.append(f"seed: {answer.seed}")
    lines.append(f"steps: {answer.steps}")
    return "\n".join(lines)


def models(answer: ModelList) -> Table:
    table = Table("name", "kind", "versions", "default")
    for m in answer.models:
        table.add_row(m.name, m.kind, ", ".join(m.versions), m.default_version)
    return table


def _fields(rows: list[tuple[str, Any]]) -> Table:
    table = Table(show_header=False, box=None)
    for name, value in rows:
        if value is not None and value != [] and value != {}:
            table.add_row(name, str(value))
    return table


def model(answer: ModelVersionInfo) -> Table:
    def side(s: Any) -> str:
        parts = [f"{s.encoding}, {s.cardinality} tokens"]
        parts += [f"{k} {getattr(s, k)!r}" for k in ("tokenizer", "length") if getattr(s, k)]
        return "; ".join(parts)

    rows: list[tuple[str, Any]] = [
        ("name", answer.name),
        ("version", answer.version),
    ]
    if isinstance(answer, ModelDetail):
        rows += [("versions", ", ".join(answer.versions)), ("default", answer.default_version)]
    rows += [
        ("kind", answer.kind),
        ("description", answer.description),
        ("source", side(answer.source)),
        ("target", side(answer.target)),
        ("start token", answer.start_token),
        ("end token", answer.end_token),
        ("max steps", answer.max_steps),
        ("state shapes", answer.state_shapes),
        ("memory shape", answer.memory_shape),
        ("metrics", ", ".join(f"{k} {v}" for k, v in answer.metrics.items())),
    ]
    if isinstance(answer, ModelDetail):
        rows += [(f"refused {f.version or ''}", f.error) for f in answer.failed_versions]
    return _fields(rows)


def _shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def _flat(value: Any) -> list[Any]:
    return [x for v in value for x in _flat(v)] if isinstance(value, list) else [value]


def _tensor(value: Any) -> str:
    values = _flat(value)
    preview = ", ".join(f"{v:.4g}" for v in values[:PREVIEW])
    more = ", ..." if len(values) > PREVIEW else ""
    return f"shape {_shape(value)}: [{preview}{more}]"


def session(info: SessionInfo) -> Table:
    rows: list[tuple[str, Any]] = [
        ("session", info.session_id),
        ("model", f"{info.model} {info.version}"),
        ("steps", info.steps),
        ("created", info.created_at),
        ("expires", info.expires_at),
    ]
    rows += [(f"state[{i}]", _tensor(t)) for i, t in enumerate(info.state or [])]
    if info.memory is not None:
        rows.append(("memory", f"shape {_shape(info.memory)}"))
    return _fields(rows)
