"""Gate: thresholds (min/max, severity, CI bounds, missing metrics), regressions, verdict, config errors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from prefaudit.analyzers.base import AnalyzerResult, Metric
from prefaudit.audit import CONTRACT_METRICS, Audit
from prefaudit.errors import ConfigError
from prefaudit.gate import default_thresholds_path, gate, load_thresholds


def _audit(**values: Metric) -> Audit:
    metrics = {k: Metric.undefined("not measured") for k in CONTRACT_METRICS}
    metrics.update({k.replace("__", "."): v for k, v in values.items()})
    return Audit(metrics=metrics, results={"noise": AnalyzerResult("noise")}, pairs=pl.DataFrame({"pair_id": []}))


def _status(result, metric: str) -> list[str]:
    return result.checks.filter(pl.col("metric") == metric)["status"].to_list()


def test_threshold_min_max_and_severity() -> None:
    a = _audit(noise__estimated_rate=Metric(0.2, (0.15, 0.25), 100), shortcut__auroc=Metric(0.6, (0.55, 0.65), 100))
    th = {"metrics": {"noise.estimated_rate": {"max": 0.1, "severity": "warn"},
                      "shortcut.auroc": {"min": 0.4, "max": 0.7}}}
    r = gate(a, th)
    assert _status(r, "noise.estimated_rate") == ["warn"]
    assert _status(r, "shortcut.auroc") == ["pass"]
    assert r.verdict == "warn" and r.exit_code == 0
    r = gate(a, {"metrics": {"noise.estimated_rate": {"max": 0.1}}})
    assert r.verdict == "fail" and r.exit_code == 1


def test_threshold_on_ci_bounds() -> None:
    a = _audit(noise__estimated_rate=Metric(0.2, (0.08, 0.32), 50))
    assert gate(a, {"metrics": {"noise.estimated_rate": {"max": 0.15, "on": "ci_low"}}}).verdict == "pass"
    assert gate(a, {"metrics": {"noise.estimated_rate": {"max": 0.15, "on": "value"}}}).verdict == "fail"
    assert gate(a, {"metrics": {"noise.estimated_rate": {"min": 0.3, "on": "ci_high"}}}).verdict == "pass"
    assert gate(a, {"metrics": {"noise.estimated_rate": {"min": 0.35, "on": "ci_high"}}}).verdict == "fail"


def test_several_checks_per_metric() -> None:
    th = {"metrics": {"noise.estimated_rate": [{"max": 0.1, "severity": "warn"}, {"max": 0.2}]}}
    assert gate(_audit(noise__estimated_rate=Metric(0.05)), th).verdict == "pass"
    assert gate(_audit(noise__estimated_rate=Metric(0.15)), th).verdict == "warn"
    assert gate(_audit(noise__estimated_rate=Metric(0.25)), th).verdict == "fail"


def test_missing_metric_skipped_or_failed() -> None:
    a = _audit()  # agreement undefined (no annotations)
    r = gate(a, {"metrics": {"agreement.krippendorff_alpha": {"min": 0.4}}})
    assert _status(r, "agreement.krippendorff_alpha") == ["skip"] and r.verdict == "pass"
    r = gate(a, {"metrics": {"agreement.krippendorff_alpha": {"min": 0.4, "skip_if_missing": False}}})
    assert r.verdict == "fail" and "not measured" in r.checks["message"][0]


def test_regression_direction_aware() -> None:
    base = _audit(noise__estimated_rate=Metric(0.05), agreement__krippendorff_alpha=Metric(0.6),
                  length__chosen_longer_rate=Metric(0.52))
    th = {"regression": {"noise.estimated_rate": {"max_worsening": 0.03},
                         "agreement.krippendorff_alpha": {"max_worsening": 0.05},
                         "length.chosen_longer_rate": {"max_worsening": 0.05}}}
    same = _audit(noise__estimated_rate=Metric(0.07), agreement__krippendorff_alpha=Metric(0.7),
                  length__chosen_longer_rate=Metric(0.45))
    assert gate(same, th, baseline=base).verdict == "pass"
    worse = _audit(noise__estimated_rate=Metric(0.10), agreement__krippendorff_alpha=Metric(0.5),
                   length__chosen_longer_rate=Metric(0.60))
    r = gate(worse, th, baseline=base)
    assert r.verdict == "fail"
    assert set(r.failed["metric"]) == {"noise.estimated_rate", "agreement.krippendorff_alpha",
                                       "length.chosen_longer_rate"}
    # a lower noise rate / higher alpha is an improvement, never a regression
    better = _audit(noise__estimated_rate=Metric(0.0), agreement__krippendorff_alpha=Metric(0.9),
                    length__chosen_longer_rate=Metric(0.5))
    assert gate(better, th, baseline=base).verdict == "pass"


def test_regression_without_table_uses_default_margins(tmp_path: Path) -> None:
    base = _audit(noise__estimated_rate=Metric(0.02))
    p = tmp_path / "base.json"
    base.to_json(p)
    r = gate(_audit(noise__estimated_rate=Metric(0.09)), {"metrics": {}}, baseline=p)
    assert r.verdict == "fail" and r.failed["kind"].to_list() == ["regression"]


def test_verdict_attached_to_audit_json() -> None:
    a = _audit(noise__estimated_rate=Metric(0.3))
    d = a.to_dict()
    assert "checks" not in d and "verdict" not in d
    gate(a, {"metrics": {"noise.estimated_rate": {"max": 0.1}}})
    d = a.to_dict()
    assert d["verdict"] == "fail" and d["checks"][0]["metric"] == "noise.estimated_rate"


@pytest.mark.parametrize("text, fragment", [
    ("[metrics.\"noise.estimated_rate\"\nmax = 0.1", "malformed TOML"),
    ("[metrics.\"noise.bogus\"]\nmax = 0.1", "unknown metric name"),
    ("[metrics.\"nonsense\"]\nmax = 0.1", "unknown metric name"),
    ("[metrics.\"noise.estimated_rate\"]\nmax = \"high\"", "finite number"),
    ("[metrics.\"noise.estimated_rate\"]\nseverity = \"fail\"", "needs 'min' and/or 'max'"),
    ("[metrics.\"noise.estimated_rate\"]\nmax = 0.1\nseverity = \"error\"", "severity"),
    ("[metrics.\"noise.estimated_rate\"]\nmax = 0.1\non = \"ci_mid\"", "'on'"),
    ("[metrics.\"noise.estimated_rate\"]\nmaximum = 0.1", "unknown key"),
    ("[thresholds]\nx = 1", "unknown table"),
    ("[regression.\"coverage.n_clusters\"]\nmax_worsening = 1", "direction"),
])
def test_malformed_thresholds(tmp_path: Path, text: str, fragment: str) -> None:
    p = tmp_path / "gate.toml"
    p.write_text(text)
    a = _audit(noise__estimated_rate=Metric(0.1))
    with pytest.raises(ConfigError, match=fragment):
        gate(a, load_thresholds(p))


def test_unknown_metric_in_known_namespace_rejected_against_audit() -> None:
    with pytest.raises(ConfigError, match="unknown metric name 'noise.bogus'"):
        gate(_audit(), {"metrics": {"noise.bogus": {"max": 1}}})


def test_missing_thresholds_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_thresholds(tmp_path / "absent.toml")


def test_default_thresholds_parse_and_cover_contract() -> None:
    th = load_thresholds(None)
    assert th.checks and th.regressions
    assert default_thresholds_path().is_file()
    assert {c.metric for c in th.checks} <= set(CONTRACT_METRICS)
    # every regression default has a direction
    assert all(c.direction is not None for c in th.regressions)
