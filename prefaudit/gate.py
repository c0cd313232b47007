"""The pipeline gate: a TOML thresholds file -> checks (pass / warn / fail / skip) -> a verdict.

The audit measures; only the gate judges. A thresholds file has two tables (see the documented default
``prefaudit/defaults/gate.toml``)::

    [metrics."noise.estimated_rate"]     # or [[metrics."..."]] for several checks on one metric
    max = 0.15                           # min and/or max
    severity = "fail"                    # "fail" (default) or "warn"
    on = "ci_low"                        # "value" (default), "ci_low" or "ci_high"
    skip_if_missing = true               # default true: a null metric is skipped, not failed

    [regression."noise.estimated_rate"]  # used only with a baseline audit (--baseline)
    max_worsening = 0.03                 # may not get worse than the baseline by more than this
    direction = "lower"                  # "higher", "lower" or a number (closer is better);
                                         # optional for the DESIGN.md metrics

Verdict: ``fail`` when any check fails, else ``warn`` when any warns, else ``pass``. The CLI exits 1
on ``fail`` and 0 on ``pass``/``warn``; a malformed file or an unknown metric name is a
:class:`ConfigError` (exit 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from prefaudit._callable import callable_module
from prefaudit.audit import CONTRACT_METRICS, NAMESPACE_ANALYZER
from prefaudit.errors import ConfigError
from prefaudit.tomlfile import read_toml

if TYPE_CHECKING:
    from prefaudit.analyzers.base import Metric
    from prefaudit.audit import Audit

SEVERITIES = ("fail", "warn")
BOUNDS = ("value", "ci_low", "ci_high")
THRESHOLD_KEYS = {"min", "max", "severity", "on", "skip_if_missing", "note"}
REGRESSION_KEYS = {"max_worsening", "direction", "severity", "on", "skip_if_missing", "note"}

#: Which way is better for the DESIGN.md metrics: "higher", "lower", or a target value (closer is better).
DIRECTIONS: dict[str, str | float] = {
    "data.pairs": "higher", "data.quarantined": "lower",
    "agreement.krippendorff_alpha": "higher", "agreement.fleiss_kappa": "higher",
    "agreement.percent_agreement": "higher", "agreement.n_annotators": "higher",
    "noise.estimated_rate": "lower", "noise.flagged_share": "lower",
    "length.chosen_longer_rate": 0.5, "length.log_ratio_coef": 0.0, "shortcut.auroc": 0.5,
    "coverage.target_gap_share": "lower", "coverage.target_ood_share": "lower",
    "hygiene.exact_duplicate_share": "lower", "hygiene.contradiction_share": "lower",
    "hygiene.identical_pair_share": "lower", "hygiene.empty_response_share": "lower",
}

CHECK_SCHEMA = {"metric": pl.Utf8, "kind": pl.Utf8, "severity": pl.Utf8, "on": pl.Utf8, "min": pl.Float64,
                "max": pl.Float64, "max_worsening": pl.Float64, "value": pl.Float64, "baseline": pl.Float64,
                "status": pl.Utf8, "message": pl.Utf8}


@dataclass(frozen=True)
class Check:
    """One rule: a threshold (min/max) or a regression limit on one metric."""

    metric: str
    kind: str  # "threshold" | "regression"
    severity: str = "fail"
    on: str = "value"
    min: float | None = None
    max: float | None = None
    max_worsening: float | None = None
    direction: str | float | None = None
    skip_if_missing: bool = True


@dataclass(frozen=True)
class Thresholds:
    """Parsed thresholds: the threshold checks and the regression checks, with where they came from."""

    checks: tuple[Check, ...] = ()
    regressions: tuple[Check, ...] = ()
    source: str | None = None

    @property
    def metric_names(self) -> set[str]:
        return {c.metric for c in (*self.checks, *self.regressions)}


@dataclass
class GateResult:
    """The checks table (one row per check) and the verdict ``pass`` / ``warn`` / ``fail``."""

    checks: pl.DataFrame
    verdict: str
    source: str | None = None
    baseline: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == "fail" else 0

    @property
    def failed(self) -> pl.DataFrame:
        return self.checks.filter(pl.col("status") == "fail")

    def to_dict(self) -> dict[str, Any]:
        from prefaudit.audit import jsonable

        return {"verdict": self.verdict, "counts": dict(self.counts), "thresholds": self.source,
                "baseline": self.baseline, "checks": jsonable(self.checks, max_rows=10**6)}

    def to_polars(self) -> pl.DataFrame:
        return self.checks

    def _repr_html_(self) -> str:
        from prefaudit.reprs import esc, table_html

        shown = self.checks.select("metric", "kind", "severity", "value", "status", "message")
        return (f"<div class='prefaudit-gate'><b>Gate</b>: verdict <b>{esc(self.verdict)}</b> "
                f"({esc(self.counts)}){table_html(shown.columns, shown.rows())}</div>")

    def __repr__(self) -> str:
        return f"GateResult(verdict={self.verdict!r}, {self.counts})"


# ---- parsing -----------------------------------------------------------------------------------------
def default_thresholds_path() -> Path:
    return Path(str(resources.files("prefaudit") / "defaults" / "gate.toml"))


def _number(x: Any, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
        raise ConfigError(f"{what} must be a finite number, got {x!r}")
    return float(x)


def _known_namespace(name: str) -> bool:
    ns = name.split(".", 1)[0]
    return name in CONTRACT_METRICS or (ns in NAMESPACE_ANALYZER and "." in name)


def _parse_entry(metric: str, entry: Any, kind: str, where: str) -> Check:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: [{kind} {metric!r}] must be a table")
    allowed = THRESHOLD_KEYS if kind == "threshold" else REGRESSION_KEYS
    extra = sorted(set(entry) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key {extra[0]!r} for metric {metric!r} (allowed: {', '.join(sorted(allowed))})")
    severity = entry.get("severity", "fail")
    on = entry.get("on", "value")
    if severity not in SEVERITIES:
        raise ConfigError(f"{where}: metric {metric!r}: severity must be 'fail' or 'warn', got {severity!r}")
    if on not in BOUNDS:
        raise ConfigError(f"{where}: metric {metric!r}: 'on' must be one of {', '.join(BOUNDS)}, got {on!r}")
    skip = entry.get("skip_if_missing", True)
    if not isinstance(skip, bool):
        raise ConfigError(f"{where}: metric {metric!r}: skip_if_missing must be true or false")
    if kind == "threshold":
        lo = None if "min" not in entry else _number(entry["min"], f"{where}: {metric} min")
        hi = None if "max" not in entry else _number(entry["max"], f"{where}: {metric} max")
        if lo is None and hi is None:
            raise ConfigError(f"{where}: metric {metric!r} needs 'min' and/or 'max'")
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"{where}: metric {metric!r}: min {lo} > max {hi}")
        return Check(metric, kind, severity, on, lo, hi, skip_if_missing=skip)
    if "max_worsening" not in entry:
        raise ConfigError(f"{where}: regression for {metric!r} needs 'max_worsening'")
    margin = _number(entry["max_worsening"], f"{where}: {metric} max_worsening")
    if margin < 0:
        raise ConfigError(f"{where}: regression for {metric!r}: max_worsening must be >= 0")
    direction = entry.get("direction", DIRECTIONS.get(metric))
    if direction is None:
        raise ConfigError(f"{where}: regression for {metric!r} needs a 'direction' (higher, lower or a target number)")
    if not (direction in ("higher", "lower") or isinstance(direction, (int, float)) and not isinstance(direction, bool)):
        raise ConfigError(f"{where}: regression for {metric!r}: direction must be 'higher', 'lower' or a number")
    return Check(metric, kind, severity, on, max_worsening=margin, direction=direction, skip_if_missing=skip)


def _entries(table: Any, kind: str, where: str) -> list[Check]:
    if table is None:
        return []
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: [{'metrics' if kind == 'threshold' else 'regression'}] must be a table")
    out = []
    for metric, entry in table.items():
        if not _known_namespace(metric):
            raise ConfigError(f"{where}: unknown metric name {metric!r}")
        for e in entry if isinstance(entry, list) else [entry]:
            out.append(_parse_entry(metric, e, kind, where))
    return out


def parse_thresholds(d: Mapping[str, Any], source: str | None = None) -> Thresholds:
    """Validate a thresholds mapping (the parsed TOML) into :class:`Thresholds` (ConfigError if bad)."""
    where = source or "thresholds"
    extra = sorted(set(d) - {"metrics", "regression", "gate"})
    if extra:
        raise ConfigError(f"{where}: unknown table {extra[0]!r} (expected [metrics] and [regression])")
    return Thresholds(tuple(_entries(d.get("metrics"), "threshold", where)),
                      tuple(_entries(d.get("regression"), "regression", where)), source)


def load_thresholds(spec: str | Path | Mapping[str, Any] | Thresholds | None = None) -> Thresholds:
    """Thresholds from a TOML path, a mapping, a :class:`Thresholds`, or None (the documented default)."""
    if isinstance(spec, Thresholds):
        return spec
    if isinstance(spec, Mapping):
        return parse_thresholds(spec, "thresholds")
    path = default_thresholds_path() if spec is None else Path(spec)
    d = read_toml(path, "thresholds")
    return parse_thresholds(d, "default gate.toml" if spec is None else str(path))


# ---- evaluation ---------------------------------------------------------------------------------------
def _pick(m: Metric | None, on: str) -> tuple[float | None, str | None]:
    """The number a check looks at (value, or a CI bound), and a note when it had to fall back."""
    if m is None or m.value is None:
        return None, None
    if on == "value":
        return m.value, None
    if m.ci is None:
        return m.value, f"no CI ({m.method or 'exact'}); used the value"
    return (m.ci[0] if on == "ci_low" else m.ci[1]), None


def _badness(v: float, direction: str | float) -> float:
    if direction == "higher":
        return -v
    if direction == "lower":
        return v
    return abs(v - float(direction))


def _fmt(x: float | None) -> str:
    return "null" if x is None else f"{x:.4g}"


def _row(c: Check, value: float | None, status: str, message: str, baseline: float | None = None) -> dict:
    return {"metric": c.metric, "kind": c.kind, "severity": c.severity, "on": c.on, "min": c.min, "max": c.max,
            "max_worsening": c.max_worsening, "value": value, "baseline": baseline, "status": status,
            "message": message}


def _missing(c: Check, m: Metric | None, what: str) -> dict:
    note = "absent" if m is None else (m.note or "undefined")
    if c.skip_if_missing:
        return _row(c, None, "skip", f"{what} undefined ({note}); skipped")
    return _row(c, None, c.severity, f"{what} undefined ({note}) and skip_if_missing = false")


def check_threshold(c: Check, m: Metric | None) -> dict[str, Any]:
    """Evaluate one threshold check against a metric."""
    v, note = _pick(m, c.on)
    if v is None:
        return _missing(c, m, c.metric)
    bad = (c.min is not None and v < c.min) or (c.max is not None and v > c.max)
    rng = f"[{_fmt(c.min) if c.min is not None else '-inf'}, {_fmt(c.max) if c.max is not None else 'inf'}]"
    msg = f"{c.on} {_fmt(v)} {'outside' if bad else 'within'} {rng}" + (f" ({note})" if note else "")
    return _row(c, v, c.severity if bad else "pass", msg)


def check_regression(c: Check, m: Metric | None, base: Metric | None) -> dict[str, Any]:
    """Evaluate one regression check: the metric may not worsen past the baseline by more than the margin."""
    v, note = _pick(m, c.on)
    b, _ = _pick(base, c.on)
    if v is None:
        return _missing(c, m, c.metric)
    if b is None:
        return _missing(c, base, f"baseline {c.metric}")
    assert c.direction is not None and c.max_worsening is not None
    worse = _badness(v, c.direction) - _badness(b, c.direction)
    bad = worse > c.max_worsening + 1e-12
    msg = (f"{c.on} {_fmt(v)} vs baseline {_fmt(b)}: worsened by {_fmt(max(worse, 0.0))} "
           f"(limit {_fmt(c.max_worsening)}, better = {c.direction})" + (f" ({note})" if note else ""))
    return _row(c, v, c.severity if bad else "pass", msg, baseline=b)


def _validate_names(th: Thresholds, known: set[str]) -> None:
    for name in sorted(th.metric_names):
        if name not in known:
            raise ConfigError(f"{th.source or 'thresholds'}: unknown metric name {name!r}")


def gate(audit: Audit, thresholds: str | Path | Mapping[str, Any] | Thresholds | None = None,
         baseline: Audit | str | Path | None = None, *, attach: bool = True) -> GateResult:
    """Judge an audit: every threshold check (+ regression checks against ``baseline``) -> verdict.

    ``thresholds`` is a TOML path, a mapping, a :class:`Thresholds`, or None for the documented default.
    ``baseline`` is a previous :class:`Audit` or the path of its JSON; without a ``[regression]`` table
    the default file's regression margins apply. With ``attach`` the result is stored on the audit, so
    that its JSON carries ``checks`` and ``verdict``.
    """
    from prefaudit.audit import Audit

    th = load_thresholds(thresholds)
    known = set(CONTRACT_METRICS) | set(audit.metrics)
    _validate_names(th, known)
    rows = [check_threshold(c, audit.metrics.get(c.metric)) for c in th.checks]
    base_name = None
    if baseline is not None:
        base = baseline if isinstance(baseline, Audit) else Audit.from_json(baseline)
        base_name = None if isinstance(baseline, Audit) else str(baseline)
        regressions = th.regressions or load_thresholds(None).regressions
        _validate_names(Thresholds(regressions=regressions, source=th.source), known | set(base.metrics))
        rows += [check_regression(c, audit.metrics.get(c.metric), base.metrics.get(c.metric)) for c in regressions]
    checks = pl.DataFrame(rows, schema=CHECK_SCHEMA) if rows else pl.DataFrame(schema=CHECK_SCHEMA)
    statuses = checks["status"].to_list()
    counts = {s: statuses.count(s) for s in ("pass", "warn", "fail", "skip")}
    verdict = "fail" if counts["fail"] else "warn" if counts["warn"] else "pass"
    result = GateResult(checks, verdict, th.source, base_name, counts)
    if attach:
        audit.gate_result = result
    return result


callable_module(__name__, gate)

__all__ = ["Check", "DIRECTIONS", "GateResult", "Thresholds", "check_regression", "check_threshold", "gate",
           "load_thresholds", "parse_thresholds"]
