"""Matplotlib figures for results. Analyzer modules register a specific plot with :func:`register_plot`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    import matplotlib.figure

    from prefaudit.analyzers.base import AnalyzerResult

_PLOTS: dict[str, Callable[[AnalyzerResult], matplotlib.figure.Figure]] = {}


def register_plot(name: str) -> Callable:
    """Decorator: ``@register_plot("bias")`` makes a function the plot of results named ``name``."""

    def deco(fn: Callable[[AnalyzerResult], matplotlib.figure.Figure]) -> Callable:
        _PLOTS[name] = fn
        return fn

    return deco


def new_figure(width: float = 6.0, height: float = 3.2) -> matplotlib.figure.Figure:
    """A Figure not attached to pyplot's global state (safe in servers and tests)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plot_metrics(result: AnalyzerResult) -> matplotlib.figure.Figure:
    """Fallback plot: each defined metric as a point with its 95% CI."""
    items = [(k, m) for k, m in result.metrics.items() if m.value is not None]
    fig = new_figure(6.0, 0.5 + 0.35 * max(1, len(items)))
    ax = fig.add_subplot()
    for i, (_, m) in enumerate(items):
        lo, hi = m.ci if m.ci else (m.value, m.value)
        ax.plot([lo, hi], [i, i], color="#555")
        ax.plot([m.value], [i], "o", color="#1f5fa8")
    ax.set_yticks(range(len(items)), [k for k, _ in items])
    ax.set_title(result.name)
    return fig


def has_plot(name: str) -> bool:
    """Whether an analyzer named ``name`` registered a specific plot."""
    return name in _PLOTS


def plot_result(result: AnalyzerResult) -> matplotlib.figure.Figure:
    """The registered plot of ``result.name``, else :func:`plot_metrics`."""
    return _PLOTS.get(result.name, plot_metrics)(result)


def plot_scores(pairs: pl.DataFrame, name: str, bins: int = 30) -> matplotlib.figure.Figure:
    """Histogram of ``<name>_score`` over the pairs (1 = looks clean), flagged pairs stacked in red."""
    import numpy as np

    score, flag = pairs[f"{name}_score"].cast(pl.Float64), f"{name}_flag"
    flagged = pairs[flag].fill_null(False) if flag in pairs.columns else pl.Series([False] * pairs.height)
    ok = score.is_not_null()
    parts = [score.filter(ok & ~flagged).to_numpy(), score.filter(ok & flagged).to_numpy()]
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig = new_figure(6.0, 2.6)
    ax = fig.add_subplot()
    ax.hist(parts, bins=edges, stacked=True, color=["#8aa9c9", "#c0392b"],
            label=[f"not flagged ({len(parts[0]):,})", f"flagged ({len(parts[1]):,})"])
    ax.set_xlabel(f"{name} score (1 = looks clean, low = suspicious)")
    ax.set_ylabel("pairs")
    if len(parts[0]) + len(parts[1]) > 200:
        ax.set_yscale("symlog", linthresh=10)
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_confusion(confusion: pl.DataFrame, max_annotators: int = 12) -> matplotlib.figure.Figure:
    """Heat maps of each annotator's label confusion (true label x given label, rows sum to 1).

    ``confusion`` is long form: ``annotator_id``, ``true_label``, ``given_label``, ``prob`` (the
    agreement analyzer's Dawid–Skene fit). The first ``max_annotators`` annotators (by id) are shown.
    """
    import numpy as np

    labels = sorted(set(confusion["true_label"].to_list()) | set(confusion["given_label"].to_list()),
                    key=lambda x: ("a", "b", "tie").index(x) if x in ("a", "b", "tie") else 3)
    ids = sorted(set(confusion["annotator_id"].cast(pl.Utf8).to_list()))[:max_annotators]
    cols = min(6, max(1, len(ids)))
    rows = -(-len(ids) // cols)
    fig = new_figure(1.5 * cols + 0.8, 1.55 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    pos = {lab: i for i, lab in enumerate(labels)}
    im = None
    for ax, ann in zip(axes.flat, ids, strict=False):
        m = np.zeros((len(labels), len(labels)))
        for t, g, p in confusion.filter(pl.col("annotator_id").cast(pl.Utf8) == ann).select(
                "true_label", "given_label", "prob").iter_rows():
            m[pos[t], pos[g]] = p or 0.0
        im = ax.imshow(m, vmin=0, vmax=1, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(str(ann)[:24], fontsize=7)
    for ax in list(axes.flat)[len(ids):]:
        ax.set_axis_off()
    axes[0][0].set_ylabel("true", fontsize=7)
    axes[-1][0].set_xlabel("given", fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.7, label="P(given | true)")
    return fig
