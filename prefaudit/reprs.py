"""Notebook HTML reprs: short, escaped, truncated, composed from the reprs of the parts (polars style)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefaudit.analyzers.base import AnalyzerResult

MAX_CELL = 80


def esc(value: Any, limit: int = MAX_CELL) -> str:
    """Escape any value for HTML, truncating long text with an ellipsis."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=True)


def table_html(columns: Sequence[str], rows: Iterable[Sequence[Any]], limit: int = MAX_CELL) -> str:
    """A small escaped HTML table."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(v, limit)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table class='prefaudit'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metric_rows(metrics: dict) -> list[tuple[str, str, str, str]]:
    out = []
    for name, m in metrics.items():
        value = "—" if m.value is None else f"{m.value:.4g}"
        ci = "" if m.ci is None else f"[{m.ci[0]:.4g}, {m.ci[1]:.4g}]"
        out.append((name, value, ci, str(m.n) if m.note is None else f"{m.n} ({m.note})"))
    return out


def result_html(result: AnalyzerResult, max_rows: int = 5) -> str:
    """Compact repr of an analyzer result: title, metrics table, the head of the per-pair table."""
    title = f"<b>{esc(result.name)}</b>"
    if result.skipped:
        return f"<div>{title}: skipped — {esc(result.skipped, 200)}</div>"
    parts = [title, table_html(("metric", "value", "95% CI", "n"), metric_rows(result.metrics))]
    if result.pairs is not None and result.pairs.height:
        head = result.pairs.head(max_rows)
        parts.append(table_html(head.columns, head.rows()))
        parts.append(f"<small>{result.pairs.height} pairs</small>")
    return "<div class='prefaudit-result'>" + "".join(parts) + "</div>"
