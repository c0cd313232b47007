"""Notebook HTML reprs: short, escaped, truncated, composed from the reprs of the parts (polars style).

Every dataset string goes through :func:`esc` (HTML-escaped, truncated, invisible bidi controls shown
as visible marks). The HTML report (:mod:`prefaudit.report`) reuses :data:`KEY_METRICS`,
:func:`show_invisible`, :func:`format_metric` and :func:`flag_counts`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from prefaudit.analyzers.base import AnalyzerResult, Metric

MAX_CELL = 80

#: The metrics a reader looks at first (DESIGN.md names), in display order.
KEY_METRICS = (
    "data.pairs",
    "data.quarantined",
    "agreement.krippendorff_alpha",
    "agreement.percent_agreement",
    "noise.estimated_rate",
    "noise.flagged_share",
    "length.chosen_longer_rate",
    "length.log_ratio_coef",
    "shortcut.auroc",
    "coverage.target_gap_share",
    "coverage.target_ood_share",
    "hygiene.exact_duplicate_share",
    "hygiene.contradiction_share",
    "hygiene.identical_pair_share",
    "hygiene.empty_response_share",
)

#: Bidi embedding/override/isolate controls and marks: they reorder what a reader sees (spoofing).
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def show_invisible(text: str) -> str:
    """Replace invisible bidi controls (e.g. U+202E RIGHT-TO-LEFT OVERRIDE) with a visible ``⟨U+202E⟩``."""
    return _BIDI.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def esc(value: Any, limit: int = MAX_CELL) -> str:
    """Escape any value for HTML, truncating long text with an ellipsis and showing bidi controls."""
    text = "" if value is None else str(value)
    return html.escape(show_invisible(truncate(text, limit)), quote=True)


def table_html(columns: Sequence[str], rows: Iterable[Sequence[Any]], limit: int = MAX_CELL) -> str:
    """A small escaped HTML table."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(v, limit)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table class='prefaudit'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def format_number(x: float | None) -> str:
    """Compact display of a number: 4 significant digits, integers without a decimal point."""
    if x is None:
        return "—"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:.4g}"


def format_metric(m: Metric) -> tuple[str, str, str]:
    """(value, "[lo, hi]" or "", n with the note) for display."""
    value = "—" if m.value is None else format_number(m.value)
    ci = "" if m.ci is None else f"[{m.ci[0]:.4g}, {m.ci[1]:.4g}]"
    n = str(m.n) if m.note is None else f"{m.n} ({m.note})"
    return value, ci, n


def metric_rows(metrics: Mapping[str, Metric]) -> list[tuple[str, str, str, str]]:
    return [(name, *format_metric(m)) for name, m in metrics.items()]


def flag_counts(pairs: pl.DataFrame | None) -> dict[str, int]:
    """Per analyzer, how many pairs it flags (from the ``<analyzer>_flag`` columns)."""
    if pairs is None:
        return {}
    return {c[: -len("_flag")]: int(pairs[c].fill_null(False).sum())
            for c in pairs.columns if c.endswith("_flag")}


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


def audit_html(audit: Any, max_rows: int = 5) -> str:
    """Compact repr of an audit: a header, the key metrics, flags per analyzer, then each result folded.

    Duck-typed: ``audit`` needs ``metrics`` (name -> Metric) and ``results`` (name -> AnalyzerResult);
    ``pairs`` (the per-pair table), ``input`` (dict or object with ``path``) and ``seed`` are optional.
    """
    metrics: Mapping[str, Metric] = getattr(audit, "metrics", {}) or {}
    results: Mapping[str, AnalyzerResult] = getattr(audit, "results", {}) or {}
    pairs = getattr(audit, "pairs", None)
    src = getattr(audit, "input", None)
    path = src.get("path") if isinstance(src, Mapping) else getattr(src, "path", None)
    n = metrics["data.pairs"].value if "data.pairs" in metrics else (pairs.height if pairs is not None else None)
    head = (f"<b>Audit</b>: {esc(format_number(n))} pairs from <code>{esc(path or 'memory')}</code>, "
            f"seed {esc(getattr(audit, 'seed', None))}")
    key = {k: metrics[k] for k in KEY_METRICS if k in metrics}
    flags = flag_counts(pairs)
    status = [(name, f"skipped — {r.skipped}" if r.skipped else "ran",
               flags.get(name, "") if not r.skipped else "") for name, r in results.items()]
    parts = [head,
             table_html(("metric", "value", "95% CI", "n"), metric_rows(key)) if key else "",
             table_html(("analyzer", "status", "flagged pairs"), status, limit=120) if status else ""]
    parts += [f"<details><summary>{esc(name)}</summary>{result_html(r, max_rows)}</details>"
              for name, r in results.items()]
    return "<div class='prefaudit-audit'>" + "".join(parts) + "</div>"
