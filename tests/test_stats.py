"""Shared statistics helpers against statsmodels."""

from __future__ import annotations

import pytest
from statsmodels.stats.proportion import proportion_confint

from prefaudit.stats import Z95, sign_test_p, wilson_interval


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (1, 1), (0, 288), (288, 288), (50, 97)])
def test_wilson_interval_matches_statsmodels(k: int, n: int) -> None:
    lo, hi = wilson_interval(k, n)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert lo == pytest.approx(ref_lo, abs=1e-4) and hi == pytest.approx(ref_hi, abs=1e-4)
    assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n)  # exact at the edges, open inside


def test_wilson_interval_empty() -> None:
    assert wilson_interval(0, 0) is None


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 10), (3, 10), (5, 10), (7, 10), (10, 10), (480, 1000),
                                      (50, 97), (60, 97), (1, 2000)])
def test_sign_test_matches_scipy_binomtest(k: int, n: int) -> None:
    from scipy.stats import binomtest

    assert sign_test_p(k, n) == pytest.approx(binomtest(k, n, 0.5).pvalue, rel=1e-9, abs=1e-300)


def test_z95_is_the_normal_quantile() -> None:
    from scipy.stats import norm

    assert norm.ppf(0.975) == Z95
