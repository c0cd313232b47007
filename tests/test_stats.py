"""Shared statistics helpers against statsmodels."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import proportion_confint

from prefaudit.stats import wilson_interval


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (1, 1), (0, 288), (288, 288), (50, 97)])
def test_wilson_interval_matches_statsmodels(k: int, n: int) -> None:
    lo, hi = wilson_interval(k, n)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert lo == pytest.approx(ref_lo, abs=1e-4) and hi == pytest.approx(ref_hi, abs=1e-4)
    assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n)  # exact at the edges, open inside


def test_wilson_interval_empty() -> None:
    assert wilson_interval(0, 0) is None
