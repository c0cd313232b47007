"""Run the analyzers over a preference set -> :class:`Audit` (metrics, one per-pair table, breakdowns).

``audit(data, annotations, target, eval)`` builds an :class:`AuditContext`, runs every default analyzer
in the order of :data:`DEFAULT_ANALYZERS` (hygiene -> agreement -> noise -> bias -> coverage ->
truncation), skipping with a recorded reason those whose inputs are missing, joins their per-pair
tables on ``pair_id`` and computes breakdowns (per prompt cluster and per metadata column) from that
one table. The audit measures; it never judges — see :mod:`prefaudit.gate`.

What runs under ``embeddings=False`` (the fast path, ``--no-embeddings``): hygiene's exact and
normalised duplicates, contradictions, identical/empty/truncated-looking responses and eval leakage
(near-duplicate prompts by MinHash instead of embeddings); agreement (when annotations are given);
noise from the annotations' Dawid-Skene posterior, or without annotations from its TF-IDF, relevance
and surface-feature model (no embedding features); length bias and the surface-shortcut model; the
truncation audit (when a tokenizer is given). Coverage needs prompt embeddings and is skipped with
that reason.

Scale: on more than ``max_model_pairs`` pairs (default 50,000) the analyzers that fit cross-validated
models over every pair (:data:`SAMPLED`: noise without annotations, bias) run on a seeded random
sample of that size — their metrics' notes say so and their per-pair columns are null outside it;
hygiene, agreement and the rest always see every pair. :func:`prefaudit.clean` scores every pair.

The JSON written by :meth:`Audit.to_json` is the contract in DESIGN.md: ``schema_version``,
``prefaudit_version``, ``input``, ``config``, ``metrics`` (every contract name present; null with a
note when not applicable), ``analyzers`` (per analyzer: metric names, config, details as records),
``skipped``, ``breakdowns``, ``examples`` (the most suspicious pairs with their texts, for a report
without the data), ``checks``/``verdict`` only when thresholds were applied, and ``timings`` last —
the only block that differs between two runs of the same input and seed.
"""

from __future__ import annotations

import importlib
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prefaudit._callable import callable_module
from prefaudit.analyzers.base import Analyzer, AnalyzerResult, AuditContext, Metric
from prefaudit.errors import ConfigError, InputError
from prefaudit.stats import mean_interval, wilson_interval

if TYPE_CHECKING:
    import matplotlib.figure
    import pandas as pd

    from prefaudit.data.preference_set import PreferenceSet
    from prefaudit.gate import GateResult

SCHEMA_VERSION = "1.0"
EXAMPLES_DEFAULT = 500
EXAMPLE_TEXT_CHARS = 2000
DETAIL_ROWS_MAX = 5000
BREAKDOWN_GROUPS_MAX = 200

#: The metric names DESIGN.md makes stable: always present in an audit (null + note when not applicable).
CONTRACT_METRICS: tuple[str, ...] = (
    "data.pairs", "data.quarantined",
    "agreement.krippendorff_alpha", "agreement.fleiss_kappa", "agreement.percent_agreement",
    "agreement.n_annotators",
    "noise.estimated_rate", "noise.flagged_share",
    "length.chosen_longer_rate", "length.log_ratio_coef",
    "shortcut.auroc",
    "coverage.n_clusters", "coverage.target_gap_share", "coverage.target_ood_share",
    "hygiene.exact_duplicate_share", "hygiene.contradiction_share", "hygiene.identical_pair_share",
    "hygiene.empty_response_share",
)

#: Which analyzer produces each metric namespace (``length.*`` and ``shortcut.*`` come from ``bias``).
NAMESPACE_ANALYZER = {"agreement": "agreement", "noise": "noise", "length": "bias", "shortcut": "bias",
                      "coverage": "coverage", "hygiene": "hygiene", "truncation": "truncation",
                      "bias": "bias", "data": "data"}


def _lazy(module: str, cls: str) -> Callable[..., Analyzer]:
    """A factory that imports ``module.cls`` only when called (keeps ``import prefaudit.audit`` light)."""

    def factory(**params: Any) -> Analyzer:
        return getattr(importlib.import_module(module), cls)(**params)

    factory.__name__ = f"{cls}"
    factory.__qualname__ = f"{module}.{cls}"
    return factory


#: The default analyzers, in run order: name -> factory(**params) -> Analyzer.
DEFAULT_ANALYZERS: dict[str, Callable[..., Analyzer]] = {
    "hygiene": _lazy("prefaudit.analyzers.hygiene", "HygieneAnalyzer"),
    "agreement": _lazy("prefaudit.analyzers.agreement", "AgreementAnalyzer"),
    "noise": _lazy("prefaudit.analyzers.noise", "NoiseAnalyzer"),
    "bias": _lazy("prefaudit.analyzers.bias", "BiasAnalyzer"),
    "coverage": _lazy("prefaudit.analyzers.coverage", "CoverageAnalyzer"),
    "truncation": _lazy("prefaudit.analyzers.truncation", "TruncationAnalyzer"),
}


def _needs_annotations(data: PreferenceSet, ctx: AuditContext) -> str | None:
    return None if data.has_annotations else "no annotations given (--annotations)"


def _needs_tokenizer(data: PreferenceSet, ctx: AuditContext) -> str | None:
    return None if ctx.tokenizer is not None else "no tokenizer given (--tokenizer)"


def _needs_embeddings(data: PreferenceSet, ctx: AuditContext) -> str | None:
    return None if ctx.use_embeddings else "needs prompt embeddings (embeddings are off: --no-embeddings)"


#: Inputs a default analyzer cannot run without: name -> check(data, context) -> skip reason or None.
REQUIREMENTS: dict[str, Callable[[PreferenceSet, AuditContext], str | None]] = {
    "agreement": _needs_annotations,
    "coverage": _needs_embeddings,
    "truncation": _needs_tokenizer,
}

#: Default analyzers whose cost grows with cross-validated model fits over every pair: on a set larger
#: than ``max_model_pairs`` they run on a seeded random sample (name -> does it apply to this data?).
#: Noise only without annotations (the Dawid-Skene posterior over votes is cheap and exact).
SAMPLED: dict[str, Callable[[PreferenceSet], bool]] = {
    "noise": lambda data: not data.has_annotations,
    "bias": lambda data: True,
}
MAX_MODEL_PAIRS = 50_000


def _on_sample(res: AnalyzerResult, n_sample: int, n_total: int) -> AnalyzerResult:
    """Say in every metric's note (and the config) that ``res`` was computed on a random sample."""
    what = f"on a random sample of {n_sample:,} of {n_total:,} pairs (max_model_pairs)"
    res.metrics = {k: replace(m, note=f"{m.note}; {what}" if m.note else what) for k, m in res.metrics.items()}
    res.config = {**res.config, "sample": {"pairs": n_sample, "of": n_total}}
    return res


# ---- JSON helpers ----------------------------------------------------------------------------------
def jsonable(value: Any, max_rows: int = DETAIL_ROWS_MAX) -> Any:
    """A JSON-safe copy: frames -> records (at most ``max_rows``), numpy -> lists, NaN/inf -> None."""
    if isinstance(value, pl.DataFrame):
        return [jsonable(r) for r in value.head(max_rows).to_dicts()]
    if isinstance(value, pl.Series):
        return [jsonable(v) for v in value.head(max_rows).to_list()]
    if isinstance(value, Metric):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, max_rows) for k, v in value.items()}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (list, tuple, set, frozenset)):
        seq = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v, max_rows) for v in seq]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return jsonable(value.tolist(), max_rows)
    if callable(getattr(value, "to_dict", None)):
        return jsonable(value.to_dict(), max_rows)
    return str(value)


def _frame_rows(value: Any) -> int | None:
    return value.height if isinstance(value, pl.DataFrame) else None


def _from_json_detail(value: Any) -> Any:
    """Records (a list of dicts with the same keys) back to a polars frame; other values unchanged."""
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        try:
            return pl.DataFrame(value, infer_schema_length=None)
        except Exception:  # heterogeneous records stay as they are
            return value
    if isinstance(value, dict):
        return {k: _from_json_detail(v) for k, v in value.items()}
    return value


# ---- the per-pair table and its breakdowns --------------------------------------------------------
def join_pairs(pair_ids: pl.DataFrame, results: Iterable[AnalyzerResult]) -> pl.DataFrame:
    """Left-join every result's per-pair table on ``pair_id`` (columns prefixed ``<analyzer>_``)."""
    table = pair_ids.select(pl.col("pair_id").cast(pl.Utf8))
    for r in results:
        if r.skipped or r.pairs is None or r.pairs.height == 0:
            continue
        p = r.pairs
        rename = {c: f"{r.name}_{c}" for c in p.columns if c != "pair_id" and not c.startswith(f"{r.name}_")}
        if rename:
            p = p.rename(rename)
        p = p.with_columns(pl.col("pair_id").cast(pl.Utf8)).unique("pair_id", keep="first", maintain_order=True)
        clash = [c for c in p.columns if c != "pair_id" and c in table.columns]
        if clash:
            p = p.drop(clash)
        table = table.join(p, on="pair_id", how="left", maintain_order="left")
    return table


def _rate(k: int, n: int) -> tuple[float | None, float | None, float | None]:
    if n <= 0:
        return None, None, None
    ci = wilson_interval(k, n)
    return k / n, ci[0] if ci else None, ci[1] if ci else None


def breakdown(frame: pl.DataFrame, group: str, max_groups: int = BREAKDOWN_GROUPS_MAX) -> pl.DataFrame:
    """Per value of ``group``: n, share, chosen-longer rate and every ``*_flag`` share (Wilson CIs),
    the mean of every ``*_score``, and ``noise_rate`` — the mean of 1 - ``noise_score``, i.e. the
    expected share of wrong labels in the group (normal-approximation CI) — when noise ran; the
    ``max_groups`` largest groups, largest first.

    ``frame`` holds ``group``, ``_longer`` (chosen strictly longer in characters; null for ties) and the
    per-pair ``<analyzer>_score`` / ``<analyzer>_flag`` columns.
    """
    flags = [c for c in frame.columns if c.endswith("_flag") and frame.schema[c] == pl.Boolean]
    scores = [c for c in frame.columns if c.endswith("_score") and frame.schema[c].is_numeric()]
    aggs = [pl.len().alias("n"), pl.col("_longer").count().alias("_n_longer"),
            pl.col("_longer").sum().alias("_k_longer")]
    for c in flags:
        aggs += [pl.col(c).count().alias(f"_n_{c}"), pl.col(c).sum().alias(f"_k_{c}")]
    aggs += [pl.col(c).mean().alias(f"{c}_mean") for c in scores]
    if "noise_score" in scores:
        aggs.append((1 - pl.col("noise_score")).drop_nulls().alias("_noise_wrong"))
    total = frame.height
    g = (frame.group_by(group).agg(aggs).sort(["n", group], descending=[True, False], nulls_last=True)
         .head(max_groups))
    rows = []
    for rec in g.iter_rows(named=True):
        row: dict[str, Any] = {"group": None if rec[group] is None else str(rec[group]), "n": rec["n"],
                               "share": rec["n"] / total if total else None}
        v, lo, hi = _rate(int(rec["_k_longer"] or 0), int(rec["_n_longer"]))
        row.update(chosen_longer_rate=v, chosen_longer_ci_lo=lo, chosen_longer_ci_hi=hi)
        for c in flags:
            v, lo, hi = _rate(int(rec[f"_k_{c}"] or 0), int(rec[f"_n_{c}"]))
            row.update({f"{c}_share": v, f"{c}_share_ci_lo": lo, f"{c}_share_ci_hi": hi})
        for c in scores:
            row[f"{c}_mean"] = rec[f"{c}_mean"]
        if "_noise_wrong" in rec:
            wrong = np.asarray(rec["_noise_wrong"], dtype=float)
            ci = mean_interval(wrong)
            row.update(noise_rate=float(wrong.mean()) if wrong.size else None,
                       noise_rate_ci_lo=ci[0] if ci else None, noise_rate_ci_hi=ci[1] if ci else None)
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame(
        schema={"group": pl.Utf8, "n": pl.UInt32, "share": pl.Float64})


def _longer_expr() -> pl.Expr:
    longer = pl.col("chosen").str.len_chars() > pl.col("rejected").str.len_chars()
    return pl.when(pl.col("tie")).then(None).otherwise(longer).alias("_longer")


def compute_breakdowns(data: PreferenceSet, pairs: pl.DataFrame, by: Sequence[str]) -> dict[str, pl.DataFrame]:
    """Breakdowns of the per-pair table: per coverage cluster (when coverage ran) and per ``by`` column."""
    out: dict[str, pl.DataFrame] = {}
    groups = [c for c in ("coverage_cluster",) if c in pairs.columns] + list(by)
    if not groups:
        return out
    missing = [c for c in by if c not in data.df.columns]
    if missing:
        raise ConfigError(f"--by column {missing[0]!r} is not in the data (columns: "
                          f"{', '.join(data.metadata_columns) or 'none'})")
    base = data.df.select("pair_id", _longer_expr(), *[c for c in by if c not in pairs.columns])
    frame = pairs.join(base, on="pair_id", how="left", maintain_order="left")
    for g in groups:
        out[g] = breakdown(frame, g)
    return out


# ---- the Audit --------------------------------------------------------------------------------------
def read_audit_json(path: str | Path) -> dict[str, Any]:
    """An audit JSON file as a dict (exit-2 errors naming the file for a missing or malformed one)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("audit file not found", path=str(p))
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"not valid JSON ({e.__class__.__name__})", path=str(p),
                         line=getattr(e, "lineno", None)) from None
    if not isinstance(d, dict) or not isinstance(d.get("metrics"), dict):
        raise InputError("not a prefaudit audit JSON (no 'metrics' object)", path=str(p))
    return d


@dataclass
class Audit:
    """The result of :func:`audit`: metrics, per-analyzer results, one per-pair table, breakdowns.

    ``data`` keeps the audited :class:`PreferenceSet` (None for an audit read back by :meth:`from_json`,
    which instead carries ``examples``, the most suspicious pairs with their texts).
    """

    metrics: dict[str, Metric]
    results: dict[str, AnalyzerResult]
    pairs: pl.DataFrame
    breakdowns: dict[str, pl.DataFrame] = field(default_factory=dict)
    input: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    data: PreferenceSet | None = None
    examples: pl.DataFrame | None = None
    gate_result: GateResult | None = None
    n_examples: int = EXAMPLES_DEFAULT
    prefaudit_version: str | None = None

    # ---- views -----------------------------------------------------------------------------------
    @property
    def skipped(self) -> dict[str, str]:
        return {k: r.skipped for k, r in self.results.items() if r.skipped}

    def metric(self, name: str) -> Metric:
        try:
            return self.metrics[name]
        except KeyError:
            raise KeyError(f"no metric {name!r} in this audit") from None

    def to_polars(self) -> pl.DataFrame:
        """The per-pair table: ``pair_id`` + every ``<analyzer>_score`` / ``<analyzer>_flag`` (+ extras)."""
        return self.pairs

    def to_pandas(self) -> pd.DataFrame:
        return self.pairs.to_pandas()

    def metrics_frame(self) -> pl.DataFrame:
        return AnalyzerResult("audit", metrics=self.metrics).metrics_frame()

    def suspicious(self, n: int | None = None) -> pl.DataFrame:
        """Pairs ranked most suspicious first: most flags, then lowest score, then ``pair_id``.

        Columns: ``pair_id``, ``n_flags``, ``min_score``, ``flags`` (analyzer names) + the per-pair columns.
        """
        if self.data is None and self.examples is not None:
            return self.examples.head(n) if n is not None else self.examples
        return rank_suspicious(self.pairs, n)

    def examples_frame(self, n: int | None = None) -> pl.DataFrame:
        """The up-to-``n`` most suspicious pairs with their texts (each cut to 2,000 characters)."""
        n = self.n_examples if n is None else n
        if self.data is None:
            return (self.examples if self.examples is not None else pl.DataFrame()).head(n)
        top = rank_suspicious(self.pairs, n)
        if top.height == 0:
            return top
        keep = ["pair_id", "prompt", "chosen", "rejected", "tie"] + (
            ["chosen_side"] if "chosen_side" in self.data.df.columns else [])
        texts = self.data.df.select(keep).with_columns(
            [pl.col(c).str.slice(0, EXAMPLE_TEXT_CHARS) for c in ("prompt", "chosen", "rejected")])
        return top.join(texts, on="pair_id", how="left", maintain_order="left").select(
            "pair_id", *[c for c in keep if c != "pair_id"], *[c for c in top.columns if c != "pair_id"])

    # ---- JSON ------------------------------------------------------------------------------------
    def to_dict(self, examples: int | None = None) -> dict[str, Any]:
        """The audit JSON contract (DESIGN.md) as a dict; ``timings`` is the last key."""
        import prefaudit

        analyzers: dict[str, Any] = {}
        for name, r in self.results.items():
            entry: dict[str, Any] = {"status": "skipped" if r.skipped else "ok", "skipped": r.skipped,
                                     "metrics": sorted(r.metrics), "config": jsonable(r.config)}
            details = {k: jsonable(v) for k, v in r.details.items()}
            truncated = {k: _frame_rows(v) for k, v in r.details.items()
                         if (_frame_rows(v) or 0) > DETAIL_ROWS_MAX}
            entry["details"] = details
            if truncated:
                entry["details_truncated"] = truncated
            analyzers[name] = entry
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "prefaudit_version": self.prefaudit_version or prefaudit.__version__,
            "input": jsonable(self.input),
            "config": jsonable(self.config),
            "metrics": {k: self.metrics[k].to_dict() for k in sorted(self.metrics)},
            "analyzers": analyzers,
            "skipped": self.skipped,
            "breakdowns": {k: jsonable(v, BREAKDOWN_GROUPS_MAX) for k, v in self.breakdowns.items()},
            "examples": jsonable(self.examples_frame(examples), max_rows=10**9),
        }
        if self.gate_result is not None:
            gd = self.gate_result.to_dict()
            out["checks"] = gd["checks"]
            out["verdict"] = gd["verdict"]
        out["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return out

    def to_json(self, path: str | Path | None = None, examples: int | None = None) -> str:
        """The audit as JSON text (strict JSON: no NaN); written to ``path`` when given."""
        text = json.dumps(self.to_dict(examples), ensure_ascii=False, indent=2, allow_nan=False) + "\n"
        if path is not None:
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Audit:
        """Rebuild an audit from its JSON dict (metrics, results with details, breakdowns, examples)."""
        if "metrics" not in d or not isinstance(d["metrics"], Mapping):
            raise InputError("not a prefaudit audit JSON (no 'metrics' object)")
        metrics = {k: Metric.from_dict(v) for k, v in d["metrics"].items()}
        results: dict[str, AnalyzerResult] = {}
        for name, e in (d.get("analyzers") or {}).items():
            results[name] = AnalyzerResult(
                name=name, metrics={k: metrics[k] for k in e.get("metrics", []) if k in metrics},
                details={k: _from_json_detail(v) for k, v in (e.get("details") or {}).items()},
                skipped=e.get("skipped"), config=dict(e.get("config") or {}))
        ex = d.get("examples") or []
        examples = pl.DataFrame(ex, infer_schema_length=None) if ex else pl.DataFrame(schema={"pair_id": pl.Utf8})
        per_pair = [c for c in examples.columns if c.endswith(("_score", "_flag"))]
        breakdowns = {k: pl.DataFrame(v, infer_schema_length=None) if v else pl.DataFrame()
                      for k, v in (d.get("breakdowns") or {}).items()}
        cfg = dict(d.get("config") or {})
        audit = cls(metrics=metrics, results=results, pairs=examples.select("pair_id", *per_pair),
                    breakdowns=breakdowns, input=dict(d.get("input") or {}), config=cfg,
                    seed=int(cfg.get("seed", 0)), timings=dict(d.get("timings") or {}), data=None,
                    examples=examples, n_examples=len(ex) or EXAMPLES_DEFAULT,
                    prefaudit_version=d.get("prefaudit_version"))
        return audit

    @classmethod
    def from_json(cls, path: str | Path) -> Audit:
        """Read an audit written by :meth:`to_json` (exit-2 errors for a missing or malformed file)."""
        p = Path(path)
        d = read_audit_json(p)
        try:
            return cls.from_dict(d)
        except InputError as e:
            raise InputError(e.reason, path=str(p)) from None

    # ---- files -----------------------------------------------------------------------------------
    def write_pairs(self, path: str | Path) -> Path:
        """Write the per-pair table: ``.parquet`` or ``.csv`` by extension."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        ext = p.suffix.lower()
        table = self.pairs
        if ext == ".parquet":
            table.write_parquet(p)
        elif ext == ".csv":
            nested = [c for c, t in table.schema.items() if isinstance(t, (pl.List, pl.Struct, pl.Array))]
            table.with_columns([pl.col(c).cast(pl.List(pl.Utf8)).list.join(";") if isinstance(
                table.schema[c], pl.List) else pl.col(c).cast(pl.Utf8) for c in nested]).write_csv(p)
        else:
            raise ConfigError(f"--pairs-out must end in .parquet or .csv, got {p.name!r}")
        return p

    def target_table(self) -> pl.DataFrame:
        """One row per target prompt: ``prompt``, ``ood_score`` (higher = further away), ``ood_flag``,
        ``cluster`` — from the coverage analyzer's details."""
        cov = self.results.get("coverage")
        if cov is None or cov.skipped:
            why = "coverage did not run" if cov is None else f"coverage skipped: {cov.skipped}"
            raise ConfigError(f"no target table ({why})")
        t = cov.details.get("target")
        if not isinstance(t, pl.DataFrame):
            raise ConfigError("no target table (no --target prompts were given)")
        return t.select([c for c in ("prompt", "ood_score", "ood_flag", "cluster") if c in t.columns])

    def write_target(self, path: str | Path) -> Path:
        """Write :meth:`target_table` (format by extension: .csv, .parquet, .jsonl, .json)."""
        from prefaudit.data.io import write_frame

        return write_frame(self.target_table(), path)

    # ---- display ---------------------------------------------------------------------------------
    def headline(self) -> list[tuple[str, Metric]]:
        """The contract metrics, in contract order."""
        return [(k, self.metrics[k]) for k in CONTRACT_METRICS if k in self.metrics]

    def _repr_html_(self) -> str:
        """Compact and escaped, composed from the parts' reprs (:func:`prefaudit.reprs.audit_html`)."""
        from prefaudit.reprs import audit_html, esc

        html = audit_html(self)
        if self.gate_result is not None:
            html = (f"<div class='prefaudit-verdict'>gate verdict: <b>{esc(self.gate_result.verdict)}</b> "
                    f"({esc(self.gate_result.counts)})</div>") + html
        return html

    def __repr__(self) -> str:
        ran = [k for k, r in self.results.items() if not r.skipped]
        return (f"Audit({self.input.get('pairs', 0)} pairs, analyzers={ran}, "
                f"skipped={sorted(self.skipped)})")

    def plot(self) -> matplotlib.figure.Figure:
        """The defined share-like contract metrics with their 95% CIs."""
        from prefaudit.plots import plot_metrics

        shares = {k: m for k, m in self.headline() if m.value is not None and not k.startswith("data.")
                  and k not in ("agreement.n_annotators", "coverage.n_clusters")}
        return plot_metrics(AnalyzerResult("audit", metrics=shares))

    def to_html(self, path: str | Path | None = None, **kw: Any) -> str:
        """Render the HTML report (:func:`prefaudit.report.render_html`)."""
        from prefaudit.report import render_html

        return render_html(self, path, **kw)


def rank_suspicious(pairs: pl.DataFrame, n: int | None = None) -> pl.DataFrame:
    """Rank pairs most suspicious first: number of flags, then the lowest score, then ``pair_id``."""
    flags = [c for c in pairs.columns if c.endswith("_flag") and pairs.schema[c] == pl.Boolean]
    scores = [c for c in pairs.columns if c.endswith("_score") and pairs.schema[c].is_numeric()]
    n_flags = (pl.sum_horizontal([pl.col(c).fill_null(False).cast(pl.Int32) for c in flags])
               if flags else pl.lit(0, pl.Int32))
    min_score = pl.min_horizontal([pl.col(c).cast(pl.Float64) for c in scores]) if scores else pl.lit(None, pl.Float64)
    ranked = pairs.with_columns(n_flags.alias("n_flags"), min_score.alias("min_score"))
    if n is not None:
        ranked = ranked.filter(pl.col("n_flags") > 0) if flags else ranked
        ranked = ranked.top_k(n, by=["n_flags", "min_score", "pair_id"], reverse=[False, True, True])
    ranked = ranked.sort(["n_flags", "min_score", "pair_id"], descending=[True, False, False], nulls_last=True)
    names = [c.removesuffix("_flag") for c in flags]
    flag_list = (pl.concat_list([pl.when(pl.col(c).fill_null(False)).then(pl.lit(nm)).otherwise(None)
                                 for c, nm in zip(flags, names, strict=True)]).list.drop_nulls()
                 if flags else pl.lit([], pl.List(pl.Utf8)))
    ranked = ranked.with_columns(flag_list.alias("flags"))
    return ranked.select("pair_id", "n_flags", "min_score", "flags",
                         *[c for c in pairs.columns if c != "pair_id"])


# ---- inputs ----------------------------------------------------------------------------------------
def _as_set(data: Any, annotations: Any = None) -> PreferenceSet:
    from prefaudit.data.preference_set import PreferenceSet

    if isinstance(data, PreferenceSet):
        if annotations is None:
            return data
        raise ConfigError("annotations go with the pairs file: load(pairs, annotations=...) first, or pass "
                          "the data as a path")
    from prefaudit.data.load import load

    return load(data, annotations=annotations)


def _as_target(target: Any) -> Any:
    if target is None:
        return None
    from prefaudit.data.preference_set import PreferenceSet

    if isinstance(target, (PreferenceSet, pl.DataFrame)):
        return target
    from prefaudit.data.load import load_prompts

    return load_prompts(target)


def _as_eval(ev: Any) -> PreferenceSet | None:
    if ev is None:
        return None
    from prefaudit.data.preference_set import PreferenceSet

    if isinstance(ev, PreferenceSet):
        return ev
    from prefaudit.data.load import load

    return load(ev)


def resolve_tokenizer(tokenizer: Any, data: PreferenceSet) -> Any:
    """A tokenizer object as is; a local Hugging Face folder or ``"tiny"`` via
    :func:`prefaudit.analyzers.truncation.load_tokenizer`. The tiny preset is trained on the audited
    data here, once, so that every analyzer (truncation, token lengths in bias) sees the same tokenizer."""
    if tokenizer is None:
        return None
    from prefaudit.analyzers.truncation import TinyTokenizer, load_tokenizer

    tok = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer
    if isinstance(tok, TinyTokenizer):
        built = tok.build(data)
        built.name_or_path = tok.name
        return built
    return tok


def _tokenizer_name(tok: Any) -> str | None:
    if tok is None:
        return None
    return str(getattr(tok, "name_or_path", None) or getattr(tok, "name", None) or type(tok).__name__)


def _input_block(data: PreferenceSet) -> dict[str, Any]:
    src = data.source
    return {"path": src.path, "sha256": src.sha256, "format": src.format,
            "rows_read": int(src.rows_read or (len(data) + data.quarantine.height)),
            "pairs": len(data), "quarantined": int(data.quarantine.height),
            "annotations": 0 if data.annotations is None else len(data.annotations),
            "annotations_quarantined": 0 if data.annotations is None else int(data.annotations.quarantine.height)}


def _plan(analyzers: Any, config: Mapping[str, Any] | None) -> dict[str, tuple[Callable[[], Analyzer], bool]]:
    """name -> (make the analyzer, came from the registry?) from None (the defaults), names or instances.

    Registry analyzers are made only when their requirements hold, so a skipped one costs nothing.
    """
    config = dict(config or {})
    unknown = [k for k in config if k not in DEFAULT_ANALYZERS]
    if unknown:
        raise ConfigError(f"config for unknown analyzer {unknown[0]!r} (known: {', '.join(DEFAULT_ANALYZERS)})")
    items = list(DEFAULT_ANALYZERS) if analyzers is None else list(analyzers)
    out: dict[str, tuple[Callable[[], Analyzer], bool]] = {}
    for item in items:
        if isinstance(item, str):
            if item not in DEFAULT_ANALYZERS:
                raise ConfigError(f"unknown analyzer {item!r} (known: {', '.join(DEFAULT_ANALYZERS)})")
            params = config.get(item) or {}
            if not isinstance(params, Mapping):
                raise ConfigError(f"config for analyzer {item!r} must be a table of parameters")
            out[item] = (partial(DEFAULT_ANALYZERS[item], **params), True)
        elif isinstance(item, Analyzer):
            out[item.name] = (partial(_same, item), False)
        else:
            raise ConfigError(f"not an analyzer: {item!r}")
    return out


def _same(x: Analyzer) -> Analyzer:
    return x


def _undefined_note(name: str, results: Mapping[str, AnalyzerResult]) -> str:
    owner = NAMESPACE_ANALYZER.get(name.split(".", 1)[0], name.split(".", 1)[0])
    r = results.get(owner)
    if r is None:
        return f"analyzer {owner!r} was not run"
    if r.skipped:
        return f"{owner} skipped: {r.skipped}"
    return f"not reported by {owner}"


def assemble_metrics(data: PreferenceSet, results: Mapping[str, AnalyzerResult]) -> dict[str, Metric]:
    """data.* counts, every result's metrics, and every contract name (undefined with a note if absent)."""
    metrics: dict[str, Metric] = {
        "data.pairs": Metric.count(len(data)),
        "data.quarantined": Metric.count(data.quarantine.height),
    }
    for r in results.values():
        metrics.update(r.metrics)
    for name in CONTRACT_METRICS:
        if name not in metrics:
            metrics[name] = Metric.undefined(_undefined_note(name, results))
    return metrics


def audit(
    data: Any,
    annotations: Any = None,
    target: Any = None,
    eval: Any = None,  # noqa: A002 - the DESIGN.md option name
    *,
    analyzers: Sequence[str | Analyzer] | None = None,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
    embeddings: bool = True,
    embedder: Any = None,
    tokenizer: Any = None,
    max_length: int = 256,
    by: Sequence[str] | str = (),
    progress: bool = False,
    n_examples: int = EXAMPLES_DEFAULT,
    max_model_pairs: int | None = MAX_MODEL_PAIRS,
) -> Audit:
    """Audit preference data: run every applicable analyzer and join their results.

    ``data`` is a PreferenceSet or anything :func:`prefaudit.load` accepts; ``annotations`` a path or
    :class:`Annotations`; ``target`` / ``eval`` paths, frames or sets. ``analyzers`` restricts or
    replaces the defaults (names of :data:`DEFAULT_ANALYZERS` or Analyzer instances); ``config`` maps an
    analyzer name to its keyword parameters. ``embeddings=False`` runs only what needs no embedding
    model (see the module docstring); ``tokenizer`` (object, local path or ``"tiny"``) enables the
    truncation audit at ``max_length``; ``by`` names metadata columns to break the results down by.
    On more than ``max_model_pairs`` pairs (None or 0: no limit) the model-fitting analyzers of
    :data:`SAMPLED` run on a seeded random sample of that size: their metrics say so in their notes
    and their per-pair columns are null outside the sample (:func:`prefaudit.clean` scores every pair).
    """
    clock = StageClock()
    by = (by,) if isinstance(by, str) else tuple(by)
    pset = _as_set(data, annotations)
    tok = resolve_tokenizer(tokenizer, pset)
    ctx_target, ctx_eval = _as_target(target), _as_eval(eval)
    missing = [c for c in by if c not in pset.df.columns]
    if missing:
        raise ConfigError(f"--by column {missing[0]!r} is not in the data (metadata columns: "
                          f"{', '.join(pset.metadata_columns) or 'none'})")
    if embeddings and embedder is None:
        from prefaudit.embed import Embedder

        embedder = Embedder(progress=progress)
    ctx = AuditContext(seed=seed, embedder=embedder if embeddings else None, target=ctx_target,
                       eval=ctx_eval, tokenizer=tok, max_length=max_length, by=by, progress=progress)
    clock.lap("load")
    plan = _plan(analyzers, config)
    results: dict[str, AnalyzerResult] = {}
    for name, (make, registered) in plan.items():
        check = REQUIREMENTS.get(name) if registered else None
        reason = check(pset, ctx) if check is not None else None
        sample = (registered and max_model_pairs is not None and 0 < max_model_pairs < len(pset)
                  and SAMPLED.get(name, lambda d: False)(pset))
        if reason is not None:
            res = AnalyzerResult.skip(name, reason)
        elif sample:
            sub = pset.sample(max_model_pairs, seed=seed)
            res = _on_sample(make().run(sub, ctx), len(sub), len(pset))
        else:
            res = make().run(pset, ctx)
        results[name] = res
        clock.lap(name)
    pairs = join_pairs(pset.df.select("pair_id"), results.values())
    metrics = assemble_metrics(pset, results)
    breakdowns = compute_breakdowns(pset, pairs, by)
    clock.lap("join")
    timings = clock.done()
    cfg = {
        "seed": seed,
        "embeddings": bool(embeddings),
        "embedding_model": getattr(embedder, "model_id", None) if embeddings else None,
        "tokenizer": _tokenizer_name(tok),
        "max_length": max_length,
        "by": list(by),
        "target": _describe(target),
        "eval": _describe(eval),
        "analyzers": list(plan),
        "max_model_pairs": max_model_pairs,
    }
    return Audit(metrics=metrics, results=results, pairs=pairs, breakdowns=breakdowns,
                 input=_input_block(pset), config=cfg, seed=seed, timings=timings, data=pset,
                 n_examples=n_examples)


class StageClock:
    """Wall and CPU seconds per stage: ``{stage: wall, ..., "total": wall, "cpu_<stage>": cpu, ...}``.

    CPU time (this process, all threads) shows where the work goes when the machine is shared."""

    def __init__(self) -> None:
        self.t0 = self.t = time.perf_counter()
        self.c0 = self.c = time.process_time()
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        t, c = time.perf_counter(), time.process_time()
        self.wall[stage], self.cpu[f"cpu_{stage}"] = t - self.t, c - self.c
        self.t, self.c = t, c

    def done(self) -> dict[str, float]:
        return {**self.wall, "total": time.perf_counter() - self.t0, **self.cpu,
                "cpu_total": time.process_time() - self.c0}


def _describe(x: Any) -> str | None:
    if x is None:
        return None
    if isinstance(x, (str, Path)):
        return str(x)
    src = getattr(x, "source", None)
    if src is not None and getattr(src, "path", None):
        return str(src.path)
    return type(x).__name__


callable_module(__name__, audit)

__all__ = ["Audit", "CONTRACT_METRICS", "DEFAULT_ANALYZERS", "REQUIREMENTS", "audit", "breakdown",
           "compute_breakdowns", "join_pairs", "rank_suspicious"]
