"""Label vocabularies: raw label values -> a graded score in [-2, 2] (positive: response_a is better).

A score's sign gives the label (``a`` > 0, ``b`` < 0, ``tie`` = 0); a plain a/b vote is ±1. The lookup
order for a raw value is: the user's ``labels=`` mapping (keys compared as text), then the built-in
words below (case-insensitive), then a number in [-2, 2]. For numbered responses
(``output_1``/``output_2``, LLMBar's convention) the numbers 1 and 2 name the better output instead.
Anything else is a ``bad_label``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from prefaudit.errors import ConfigError

WORDS: dict[str, float] = {
    "a": 1.0, "b": -1.0, "tie": 0.0,
    "response_a": 1.0, "response_b": -1.0, "model_a": 1.0, "model_b": -1.0,
    "draw": 0.0, "equal": 0.0, "same": 0.0, "tie (bothbad)": 0.0,
    # Tülu-1 human evaluation (open-instruct)
    "a-is-better": 2.0, "a-is-slightly-better": 1.0,
    "b-is-slightly-better": -1.0, "b-is-better": -2.0,
}
INDEX_WORDS: dict[str, float] = {"1": 1.0, "2": -1.0}


def _key(value: Any) -> str:
    """Text form of a raw value used for mapping keys: 1.0 -> '1', ' A ' -> 'A'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _target(value: Any) -> float:
    """A mapping target: a/b/tie or a number in [-2, 2]."""
    if isinstance(value, str) and value.strip().lower() in ("a", "b", "tie"):
        return WORDS[value.strip().lower()]
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"label mapping target must be a, b, tie or a number in [-2, 2], got {value!r}") \
            from None
    if not (-2.0 <= x <= 2.0):
        raise ConfigError(f"label mapping target {value!r} is outside [-2, 2]")
    return x


class LabelMap:
    """Maps raw label values to scores; ``index=True`` for numbered responses (1 / 2 name the better)."""

    def __init__(self, user: Mapping[Any, Any] | None = None, *, index: bool = False) -> None:
        self.user = {_key(k): _target(v) for k, v in (user or {}).items()}
        self.index = index

    def score(self, value: Any) -> float | None:
        """The graded score of one raw value, or None when it is not a label."""
        if value is None or isinstance(value, bool):
            return None
        key = _key(value)
        if key in self.user:
            return self.user[key]
        if self.index and key in INDEX_WORDS:
            return INDEX_WORDS[key]
        if isinstance(value, str) and key.lower() in WORDS:
            return WORDS[key.lower()]
        if self.index:
            return None
        try:
            x = float(value)
        except (TypeError, ValueError):
            return None
        return x if math.isfinite(x) and -2.0 <= x <= 2.0 else None

    def scores(self, raw: pl.Series) -> pl.Series:
        """Vectorized over the distinct values: a Float64 series, null where the value is no label."""
        uniq = raw.unique().drop_nulls().to_list()
        table = {v: self.score(v) for v in uniq}
        if not table:
            return pl.Series(raw.name, [None] * raw.len(), dtype=pl.Float64)
        return raw.replace_strict(list(table), list(table.values()), default=None, return_dtype=pl.Float64)


def label_of(score: pl.Expr) -> pl.Expr:
    """a / b / tie from a graded score expression."""
    return pl.when(score > 0).then(pl.lit("a")).when(score < 0).then(pl.lit("b")).otherwise(pl.lit("tie"))
