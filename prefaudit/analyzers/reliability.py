"""Inter-rater reliability statistics: pure functions over numpy arrays (usable alone from a notebook).

- :func:`krippendorff_alpha` — from a coders x units reliability matrix (NaN = missing) or from a
  units x values count table, at any level of measurement, via the ``krippendorff`` package. Returns
  None when alpha is undefined (no pairable unit, or only one value used: no disagreement possible).
- :func:`fleiss_kappa` — from a subjects x categories count table. Rows may have different numbers
  of raters (the generalisation used by ``irr``/Gwet: per-subject agreement over each subject's own
  rater pairs, category shares pooled over all ratings); rows with fewer than two ratings are left
  out. With a constant number of raters it is exactly Fleiss (1971) — statsmodels' ``fleiss_kappa``
  assumes a constant count, which multi-annotator preference data rarely has, hence this function.
- :func:`cohen_kappa` — from a two-rater confusion matrix.
- :func:`percent_agreement` — mean share of agreeing rater pairs per subject (Fleiss' P-bar).

Every function returns ``float`` or ``None`` (undefined), never NaN.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def _finite_or_none(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def krippendorff_alpha(
    reliability_data: np.ndarray | None = None,
    level: str = "nominal",
    *,
    value_counts: np.ndarray | None = None,
    value_domain: np.ndarray | None = None,
) -> float | None:
    """Krippendorff's alpha, or None when undefined.

    Give either ``reliability_data`` (coders x units, NaN for a missing rating) or ``value_counts``
    (units x values: how many ratings each unit got of each value in ``value_domain``, which is then
    required for non-nominal levels and gives the values' order and distances). ``level`` is one of
    :data:`LEVELS`. Units with fewer than two ratings are not pairable and do not count.
    """
    import krippendorff

    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if (reliability_data is None) == (value_counts is None):
        raise ValueError("give exactly one of reliability_data and value_counts")
    if value_counts is not None:
        counts = np.asarray(value_counts, dtype=float)
        if counts.ndim != 2:
            raise ValueError("value_counts must be a units x values table")
        counts = counts[counts.sum(axis=1) >= 2]
        if counts.shape[0] == 0 or (counts.sum(axis=0) > 0).sum() < 2:
            return None
        kw: dict = {"value_counts": counts}
        if value_domain is not None:
            kw["value_domain"] = np.asarray(value_domain, dtype=float)
        elif level != "nominal":
            raise ValueError("value_domain is required with value_counts for a non-nominal level")
    else:
        data = np.asarray(reliability_data, dtype=float)
        pairable = (~np.isnan(data)).sum(axis=0) >= 2
        used = np.unique(data[:, pairable][~np.isnan(data[:, pairable])])
        if used.size < 2:
            return None
        kw = {"reliability_data": data}
        if value_domain is not None:
            kw["value_domain"] = np.asarray(value_domain, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return _finite_or_none(krippendorff.alpha(level_of_measurement=level, **kw))
        except (ValueError, ZeroDivisionError):
            return None


def fleiss_kappa(table: np.ndarray) -> float | None:
    """Fleiss' kappa of a subjects x categories count table (rows may have different totals).

    Rows with fewer than two ratings are left out. None when undefined (no usable row, or every
    rating in one category so that chance agreement is 1).
    """
    t = np.asarray(table, dtype=float)
    if t.ndim != 2:
        raise ValueError("table must be subjects x categories")
    n_i = t.sum(axis=1)
    t, n_i = t[n_i >= 2], n_i[n_i >= 2]
    if t.shape[0] == 0:
        return None
    p_bar = float(np.mean(((t * t).sum(axis=1) - n_i) / (n_i * (n_i - 1))))
    p_j = t.sum(axis=0) / t.sum()
    p_e = float((p_j * p_j).sum())
    if p_e >= 1.0 - 1e-12:
        return None
    return (p_bar - p_e) / (1.0 - p_e)


def percent_agreement(table: np.ndarray) -> float | None:
    """Mean share of agreeing rater pairs per subject, over subjects with at least two ratings."""
    t = np.asarray(table, dtype=float)
    n_i = t.sum(axis=1)
    t, n_i = t[n_i >= 2], n_i[n_i >= 2]
    if t.shape[0] == 0:
        return None
    return float(np.mean(((t * t).sum(axis=1) - n_i) / (n_i * (n_i - 1))))


def cohen_kappa(confusion: np.ndarray) -> float | None:
    """Cohen's kappa of a square confusion matrix (rows: rater 1, columns: rater 2); None if undefined."""
    c = np.asarray(confusion, dtype=float)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError("confusion must be a square matrix")
    total = c.sum()
    if total <= 0:
        return None
    p_o = np.trace(c) / total
    p_e = float((c.sum(axis=1) * c.sum(axis=0)).sum() / (total * total))
    if p_e >= 1.0 - 1e-12:
        return None
    return float((p_o - p_e) / (1.0 - p_e))
