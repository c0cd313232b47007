"""The analyzer protocol shared by every analyzer.

- :class:`Metric`: a value with its 95% CI, n, the CI method, and a note when undefined. No bare floats.
- :class:`AnalyzerResult`: metrics (dotted names, DESIGN.md), a per-pair table keyed by ``pair_id`` with
  ``<analyzer>_score`` in [0, 1] (1 = looks clean, low = suspicious) and ``<analyzer>_flag``
  (True = suspicious), and named detail tables.
- :class:`AuditContext`: what an analyzer may need beyond the pairs (embedder, target prompts, eval
  set, tokenizer, seed). Analyzers take their parameters in ``__init__`` (stored unchanged) and
  ``run(data, context) -> AnalyzerResult`` mutates nothing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import polars as pl

from prefaudit.stats import wilson_interval

if TYPE_CHECKING:
    import matplotlib.figure
    import pandas as pd

    from prefaudit.data.preference_set import PreferenceSet
    from prefaudit.embed import Embedder


def _clean_float(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Metric:
    """A statistic with its uncertainty: value, 95% CI, n, how the CI was made, and a note.

    ``value`` is None when the statistic is undefined (``note`` then says why); NaN is never stored.
    """

    value: float | None
    ci: tuple[float, float] | None = None
    n: int = 0
    note: str | None = None
    method: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _clean_float(self.value))
        if self.ci is not None:
            lo, hi = (_clean_float(self.ci[0]), _clean_float(self.ci[1]))
            object.__setattr__(self, "ci", None if lo is None or hi is None else (lo, hi))
        if self.value is None and self.note is None:
            object.__setattr__(self, "note", "undefined")
        object.__setattr__(self, "n", int(self.n))

    @classmethod
    def proportion(cls, k: float, n: int, note: str | None = None) -> Metric:
        """k of n, with a Wilson score interval."""
        if n <= 0:
            return cls(None, None, 0, note or "no items")
        return cls(k / n, wilson_interval(k, n), n, note, "wilson")

    @classmethod
    def count(cls, k: int, note: str | None = None) -> Metric:
        """An exact count (no uncertainty)."""
        return cls(float(k), None, int(k), note, "exact")

    @classmethod
    def undefined(cls, note: str, n: int = 0) -> Metric:
        return cls(None, None, n, note)

    def to_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "ci": list(self.ci) if self.ci is not None else None,
            "n": self.n,
            "note": self.note,
            "ci_method": self.method,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Metric:
        ci = d.get("ci")
        return cls(d.get("value"), tuple(ci) if ci else None, d.get("n", 0), d.get("note"), d.get("ci_method"))

    def __str__(self) -> str:
        if self.value is None:
            return f"undefined ({self.note})"
        s = f"{self.value:.4g}"
        if self.ci is not None:
            s += f" [{self.ci[0]:.4g}, {self.ci[1]:.4g}]"
        return s + f" (n={self.n})"

    def _repr_html_(self) -> str:
        return f"<span>{html.escape(str(self))}</span>"


@dataclass
class AuditContext:
    """Everything an analyzer may use besides the pairs. Missing pieces make analyzers skip parts."""

    seed: int = 0
    embedder: Embedder | None = None
    target: PreferenceSet | pl.DataFrame | None = None
    eval: PreferenceSet | None = None
    tokenizer: Any | None = None
    max_length: int = 256
    max_prompt_length: int | None = None
    by: tuple[str, ...] = ()
    progress: bool = False

    @property
    def use_embeddings(self) -> bool:
        return self.embedder is not None


@dataclass
class AnalyzerResult:
    """What an analyzer returns: metrics, the per-pair table, details, and a skip reason if skipped."""

    name: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    pairs: pl.DataFrame | None = None
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def skip(cls, name: str, reason: str, config: dict[str, Any] | None = None) -> AnalyzerResult:
        return cls(name=name, skipped=reason, config=config or {})

    @property
    def score_column(self) -> str:
        return f"{self.name}_score"

    @property
    def flag_column(self) -> str:
        return f"{self.name}_flag"

    def metrics_frame(self) -> pl.DataFrame:
        rows = [
            {"metric": k, "value": m.value, "ci_lo": m.ci[0] if m.ci else None,
             "ci_hi": m.ci[1] if m.ci else None, "n": m.n, "note": m.note}
            for k, m in self.metrics.items()
        ]
        schema = {"metric": pl.Utf8, "value": pl.Float64, "ci_lo": pl.Float64, "ci_hi": pl.Float64,
                  "n": pl.Int64, "note": pl.Utf8}
        return pl.DataFrame(rows, schema=schema)

    def to_polars(self) -> pl.DataFrame:
        """The per-pair table when there is one, else the metrics table."""
        return self.pairs if self.pairs is not None else self.metrics_frame()

    def to_pandas(self) -> pd.DataFrame:
        return self.to_polars().to_pandas()

    def plot(self) -> matplotlib.figure.Figure:
        """A matplotlib Figure of this result (analyzer-specific when registered, else the metrics)."""
        from prefaudit.plots import plot_result

        return plot_result(self)

    def _repr_html_(self) -> str:
        from prefaudit.reprs import result_html

        return result_html(self)


@runtime_checkable
class Analyzer(Protocol):
    """Protocol: ``name``; parameters as keyword args of ``__init__``; ``run`` returns a new result."""

    name: str

    def run(self, data: PreferenceSet, context: AuditContext | None = None) -> AnalyzerResult: ...
