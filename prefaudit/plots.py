"""Matplotlib figures for results. Analyzer modules register a specific plot with :func:`register_plot`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

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


def plot_result(result: AnalyzerResult) -> matplotlib.figure.Figure:
    return _PLOTS.get(result.name, plot_metrics)(result)
