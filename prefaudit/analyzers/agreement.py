"""Annotator agreement: how far the raters agree, who is reliable, and whether position sways them.

Pure functions underneath (usable alone on an :class:`~prefaudit.data.preference_set.Annotations`
frame) and :class:`AgreementAnalyzer` on top. Statistics (each with a 95% percentile bootstrap CI
over items; items with fewer than two ratings carry no agreement information and are left out):

- ``agreement.krippendorff_alpha``: nominal alpha over the labels a / b / tie;
  ``agreement.krippendorff_alpha_ordinal`` / ``_interval``: over the graded scores in [-2, 2]
  (plain a / tie / b votes are 1 / 0 / -1). Undefined (value None + note) when no item has two
  ratings or when every rating has the same value.
- ``agreement.fleiss_kappa`` (variable raters per item, :func:`reliability.fleiss_kappa`),
  ``agreement.percent_agreement`` (mean share of agreeing rater pairs per item),
  ``agreement.n_annotators``, ``agreement.multi_rated_share`` (items with two or more ratings).
- ``agreement.position_bias``: when votes record ``shown_order``, the share of non-tie votes that
  went to the response shown first (0.5 = no position effect). Labels are compared in the canonical
  a/b order the loader puts them in; :func:`as_shown` gives the labels in the order each rater saw
  them, which is *not* what agreement should be measured on.
- Details: ``annotators`` (per annotator: votes, agreement with the leave-one-out plurality of the
  other raters, Dawid–Skene accuracy with CI, first-shown rate, ``flag`` for annotators reliably
  worse than the crowd), ``cohen_kappa`` (pairwise Cohen's kappa for every pair of annotators who
  share items, with CIs), ``confusion`` (Dawid–Skene confusion matrices, long form).
- Per pair: ``agreement_score`` = the largest share of the pair's votes on one label (1 = unanimous;
  a 1-1 split gives 0.5); ``agreement_flag`` = a split vote (two or more votes and no strict
  majority); ``agreement_n_votes``, ``agreement_consensus`` (``Annotations.consensus``, which breaks
  a plurality tie by the mean graded score). Pairs without votes get a null score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prefaudit.analyzers.base import AnalyzerResult, AuditContext, Metric
from prefaudit.analyzers.dawid_skene import DawidSkeneFit, dawid_skene
from prefaudit.analyzers.reliability import cohen_kappa, fleiss_kappa, krippendorff_alpha, percent_agreement
from prefaudit.plots import new_figure, register_plot
from prefaudit.stats import bootstrap_interval, wilson_interval

if TYPE_CHECKING:
    import matplotlib.figure

    from prefaudit.data.preference_set import Annotations, PreferenceSet

LABELS: tuple[str, ...] = ("a", "b", "tie")
BOOT_METHOD = "percentile bootstrap over items"


# ---- votes -> tables -----------------------------------------------------------------------------------
def clean_votes(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Votes with a usable label: (frame, number of votes dropped for a missing label or score)."""
    keep = pl.col("label").is_in(LABELS) & pl.col("score").is_not_null() & pl.col("score").is_finite()
    out = df.filter(keep.fill_null(False) & pl.col("pair_id").is_not_null() & pl.col("annotator_id").is_not_null())
    return out, df.height - out.height


def count_table(votes: pl.DataFrame, column: str = "label",
                values: tuple[Any, ...] | None = None) -> tuple[list[str], np.ndarray, tuple[Any, ...]]:
    """items x values vote counts: (item ids, counts, values). ``values`` default: a/b/tie for labels,
    the sorted distinct values otherwise."""
    if values is None:
        values = LABELS if column == "label" else tuple(sorted(votes[column].unique().to_list()))
    wide = (votes.group_by("pair_id").agg([(pl.col(column) == v).sum().alias(f"_{i}") for i, v in enumerate(values)])
            .sort("pair_id"))
    counts = wide.select([f"_{i}" for i in range(len(values))]).to_numpy().astype(float)
    return wide["pair_id"].to_list(), counts.reshape(len(wide), len(values)), values


def as_shown(annotations: Annotations) -> Annotations:
    """The votes with labels in the order each rater *saw* the responses (a = shown first).

    Undoes the loader's canonicalisation for votes with ``shown_order == "ba"``. Agreement should be
    measured on the canonical order; this exists to show that the canonicalisation matters.
    """
    if "shown_order" not in annotations.df.columns:
        return annotations
    ids = annotations.df.with_row_index("_r")
    swapped = ids.filter(pl.col("shown_order") == "ba")["_r"]
    df = ids.with_columns(
        pl.when(pl.col("_r").is_in(swapped.implode())).then(-pl.col("score")).otherwise(pl.col("score")).alias("score"),
        pl.when(pl.col("_r").is_in(swapped.implode())).then(pl.col("label").replace({"a": "b", "b": "a"}))
        .otherwise(pl.col("label")).alias("label"),
        pl.lit("ab").alias("shown_order")).drop("_r")
    return type(annotations)(df, annotations.quarantine, annotations.source)


# ---- statistics with bootstrap CIs ---------------------------------------------------------------------
def _boot_metric(stat: Callable[[np.ndarray], float | None], n: int, seed: int, n_boot: int,
                 undefined_note: str, note: str | None = None) -> Metric:
    """A statistic of n items (value on all, percentile bootstrap CI over items), or undefined."""
    value = stat(np.arange(n)) if n else None
    if value is None:
        return Metric.undefined(undefined_note, n)

    def f(idx: np.ndarray) -> float:
        v = stat(idx)
        return np.nan if v is None else v

    return Metric(value, bootstrap_interval(f, n, seed=seed, n_boot=n_boot), n, note, BOOT_METHOD)


def agreement_metrics(votes: pl.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Metric]:
    """Alpha (nominal, ordinal, interval), Fleiss' kappa, percent agreement, counts — with bootstrap CIs."""
    _, labels, _ = count_table(votes, "label")
    _, scores, domain = count_table(votes, "score")
    multi = labels.sum(axis=1) >= 2
    labels, scores = labels[multi], scores[multi]
    n = int(multi.sum())
    why = ("no item has two or more ratings" if n == 0
           else "every rating has the same value: no disagreement is possible, alpha is undefined")
    dom = np.asarray(domain, dtype=float)
    out = {
        "agreement.krippendorff_alpha": _boot_metric(
            lambda i: krippendorff_alpha(value_counts=labels[i], level="nominal"), n, seed, n_boot, why,
            "nominal over a / b / tie"),
        "agreement.krippendorff_alpha_ordinal": _boot_metric(
            lambda i: krippendorff_alpha(value_counts=scores[i], value_domain=dom, level="ordinal"), n, seed,
            n_boot, why, "ordinal over the graded scores"),
        "agreement.krippendorff_alpha_interval": _boot_metric(
            lambda i: krippendorff_alpha(value_counts=scores[i], value_domain=dom, level="interval"), n, seed,
            n_boot, why, "interval over the graded scores"),
        "agreement.fleiss_kappa": _boot_metric(
            lambda i: fleiss_kappa(labels[i]), n, seed, n_boot,
            "no item has two or more ratings" if n == 0 else "all ratings in one category: chance agreement is 1",
            "over a / b / tie, raters per item may vary"),
        "agreement.percent_agreement": _boot_metric(
            lambda i: percent_agreement(labels[i]), n, seed, n_boot, "no item has two or more ratings",
            "mean share of agreeing rater pairs per item"),
        "agreement.n_annotators": Metric.count(votes["annotator_id"].n_unique()),
        "agreement.multi_rated_share": Metric.proportion(n, votes["pair_id"].n_unique(),
                                                         "items with two or more ratings"),
    }
    return out


def first_shown(votes: pl.DataFrame) -> pl.DataFrame:
    """Votes with a recorded order and a non-tie label, with ``_first`` (voted for the response shown first)."""
    if "shown_order" not in votes.columns:
        return votes.head(0).with_columns(pl.lit(False).alias("_first"))
    return (votes.filter(pl.col("shown_order").is_in(["ab", "ba"]) & (pl.col("label") != "tie"))
            .with_columns(((pl.col("label") == "a") == (pl.col("shown_order") == "ab")).alias("_first")))


def position_bias(votes: pl.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> Metric:
    """Share of non-tie votes that picked the response shown first, bootstrap CI over items.

    Needs ``shown_order`` ("ab": response_a shown first; "ba": second) and canonical labels.
    """
    if "shown_order" not in votes.columns:
        return Metric.undefined("the votes do not record the order shown (no shown_order)")
    f = first_shown(votes)
    if f.height == 0:
        return Metric.undefined("no non-tie vote with a recorded order")
    per = f.group_by("pair_id").agg(pl.col("_first").sum().alias("k"), pl.len().alias("m")).sort("pair_id")
    k, m = per["k"].to_numpy().astype(float), per["m"].to_numpy().astype(float)
    n_ties = int(votes.filter(pl.col("shown_order").is_in(["ab", "ba"]) & (pl.col("label") == "tie")).height)
    metric = _boot_metric(lambda i: float(k[i].sum() / m[i].sum()), len(k), seed, n_boot, "no votes",
                          f"share of {int(m.sum())} non-tie votes for the response shown first "
                          f"({n_ties} ties left out); 0.5 = no position effect")
    return Metric(metric.value, metric.ci, int(m.sum()), metric.note, metric.method)


# ---- per pair, per annotator, per annotator pair -------------------------------------------------------
def pair_agreement(votes: pl.DataFrame) -> pl.DataFrame:
    """Per pair: n_votes, consensus, plurality share (largest share of votes on one label), split flag."""
    from prefaudit.data.preference_set import Annotations

    cons = Annotations(votes).consensus()
    share = pl.max_horizontal("votes_a", "votes_b", "votes_tie") / pl.col("n_votes")
    return cons.select(
        pl.col("pair_id"), share.cast(pl.Float64).alias("agreement_score"),
        ((pl.col("n_votes") >= 2) & (share <= 0.5)).alias("agreement_flag"),
        pl.col("n_votes").cast(pl.Int64).alias("agreement_n_votes"), pl.col("consensus").alias("agreement_consensus"))


def leave_one_out_agreement(votes: pl.DataFrame) -> pl.DataFrame:
    """Per annotator: ``n_shared`` (votes on items someone else also rated) and ``loo_agreement``, the
    share of those votes equal to the plurality label of the *other* votes on the item (a plurality
    tie among k labels gives 1/k credit when the vote is one of them), with a Wilson CI."""
    v = votes.select("pair_id", "annotator_id", "label").with_row_index("_v")
    tot = votes.group_by("pair_id").agg([(pl.col("label") == lab).sum().alias(f"_n_{lab}") for lab in LABELS])
    v = v.join(tot, on="pair_id", how="left").with_columns(
        [(pl.col(f"_n_{lab}") - (pl.col("label") == lab).cast(pl.UInt32)).alias(f"_o_{lab}") for lab in LABELS])
    others = pl.sum_horizontal([f"_o_{lab}" for lab in LABELS])
    top = pl.max_horizontal([f"_o_{lab}" for lab in LABELS])
    n_top = pl.sum_horizontal([(pl.col(f"_o_{lab}") == top).cast(pl.Int32) for lab in LABELS])
    mine = (pl.when(pl.col("label") == "a").then(pl.col("_o_a")).when(pl.col("label") == "b").then(pl.col("_o_b"))
            .otherwise(pl.col("_o_tie")))
    credit = pl.when(mine == top).then(1.0 / n_top).otherwise(0.0)
    per = (v.filter(others > 0).with_columns(credit.alias("_c"))
           .group_by("annotator_id").agg(pl.len().alias("n_shared"), pl.col("_c").sum().alias("_k")))
    cis = [wilson_interval(k, n) for k, n in per.select("_k", "n_shared").iter_rows()]
    return per.with_columns(
        (pl.col("_k") / pl.col("n_shared")).alias("loo_agreement"),
        pl.Series("loo_ci_lo", [c[0] if c else None for c in cis], dtype=pl.Float64),
        pl.Series("loo_ci_hi", [c[1] if c else None for c in cis], dtype=pl.Float64),
    ).select("annotator_id", pl.col("n_shared").cast(pl.Int64), "loo_agreement", "loo_ci_lo", "loo_ci_hi")


def annotator_table(votes: pl.DataFrame, fit: DawidSkeneFit | None = None, *, margin: float = 0.1,
                    min_shared: int = 10) -> pl.DataFrame:
    """One row per annotator: ``n_labeled``, leave-one-out agreement (+ CI), Dawid–Skene ``ds_accuracy``
    (+ CI; null for an annotator who shares no item with another rater, whose accuracy the votes
    cannot identify), ``first_shown_rate`` (when the order shown is recorded) and ``flag``.

    ``flag``: reliably worse than the crowd — at least ``min_shared`` votes on items others also rated
    (without overlap an annotator's accuracy is not identifiable), and the upper end of the
    Dawid–Skene accuracy CI below the median accuracy of the other annotators minus ``margin``.
    """
    base = votes.group_by("annotator_id").agg(pl.len().cast(pl.Int64).alias("n_labeled"),
                                              pl.col("pair_id").n_unique().cast(pl.Int64).alias("n_items"))
    t = base.join(leave_one_out_agreement(votes), on="annotator_id", how="left").with_columns(
        pl.col("n_shared").fill_null(0))
    if fit is not None:
        acc = fit.accuracies.select("annotator_id", pl.col("accuracy").alias("ds_accuracy"),
                                    pl.col("ci_lo").alias("ds_ci_lo"), pl.col("ci_hi").alias("ds_ci_hi"))
        t = t.join(acc, on="annotator_id", how="left").with_columns(
            pl.when(pl.col("n_shared") > 0).then(pl.col(c)).otherwise(None).alias(c)
            for c in ("ds_accuracy", "ds_ci_lo", "ds_ci_hi"))
    else:
        t = t.with_columns(pl.lit(None, pl.Float64).alias(c) for c in ("ds_accuracy", "ds_ci_lo", "ds_ci_hi"))
    f = first_shown(votes)
    if f.height:
        t = t.join(f.group_by("annotator_id").agg(pl.col("_first").mean().alias("first_shown_rate"),
                                                  pl.len().cast(pl.Int64).alias("n_ordered")),
                   on="annotator_id", how="left")
    t = t.sort("annotator_id")
    acc_arr = t["ds_accuracy"].to_numpy().astype(float)
    eligible = (t["n_shared"].to_numpy() >= min_shared) & np.isfinite(acc_arr)
    crowd, flags = [], []
    for i, hi in enumerate(t["ds_ci_hi"].to_list()):
        others = acc_arr[eligible & (np.arange(t.height) != i)]
        ref = float(np.median(others)) if others.size else None
        crowd.append(ref)
        flags.append(bool(eligible[i] and ref is not None and hi is not None and hi < ref - margin))
    return t.with_columns(pl.Series("crowd_accuracy", crowd, dtype=pl.Float64), pl.Series("flag", flags))


def cohen_kappa_pairs(votes: pl.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pl.DataFrame:
    """Pairwise Cohen's kappa over a / b / tie for every two annotators who rated common items.

    Columns ``annotator_1``, ``annotator_2``, ``n_shared``, ``percent_agreement``, ``kappa`` (None when
    undefined), ``ci_lo``/``ci_hi`` (bootstrap over shared items). A repeated rating of one item by
    one annotator counts once (the last).
    """
    code = {lab: i for i, lab in enumerate(LABELS)}
    last = votes.unique(["pair_id", "annotator_id"], keep="last", maintain_order=True) \
        .select("pair_id", "annotator_id", pl.col("label").replace_strict(code, return_dtype=pl.Int64).alias("c"))
    j = last.join(last, on="pair_id", suffix="_2").filter(pl.col("annotator_id") < pl.col("annotator_id_2"))
    schema = {"annotator_1": pl.Utf8, "annotator_2": pl.Utf8, "n_shared": pl.Int64, "percent_agreement": pl.Float64,
              "kappa": pl.Float64, "ci_lo": pl.Float64, "ci_hi": pl.Float64}
    rows = []
    k = len(LABELS)
    for (a1, a2), g in j.group_by(["annotator_id", "annotator_id_2"], maintain_order=True):
        x1, x2 = g["c"].to_numpy(), g["c_2"].to_numpy()

        def kap(idx: np.ndarray, x1: np.ndarray = x1, x2: np.ndarray = x2) -> float:
            v = cohen_kappa(np.bincount(x1[idx] * k + x2[idx], minlength=k * k).reshape(k, k))
            return np.nan if v is None else v

        value = kap(np.arange(len(x1)))
        ci = bootstrap_interval(kap, len(x1), seed=seed, n_boot=n_boot) if np.isfinite(value) else None
        rows.append((a1, a2, len(x1), float(np.mean(x1 == x2)), value if np.isfinite(value) else None,
                     ci[0] if ci else None, ci[1] if ci else None))
    return pl.DataFrame(rows, schema=schema, orient="row").sort("annotator_1", "annotator_2")


# ---- the analyzer --------------------------------------------------------------------------------------
class AgreementAnalyzer:
    """Inter-annotator agreement, annotator reliability and position bias (module docstring: details).

    Parameters: ``n_boot`` (bootstrap resamples per CI), ``margin`` and ``min_shared`` (annotator
    flag, see :func:`annotator_table`), ``ds_iter`` (Dawid–Skene EM iterations).
    """

    name = "agreement"

    def __init__(self, *, n_boot: int = 1000, margin: float = 0.1, min_shared: int = 10, ds_iter: int = 100) -> None:
        self.n_boot = n_boot
        self.margin = margin
        self.min_shared = min_shared
        self.ds_iter = ds_iter

    def config(self) -> dict[str, Any]:
        return {"n_boot": self.n_boot, "margin": self.margin, "min_shared": self.min_shared, "ds_iter": self.ds_iter}

    def run(self, data: PreferenceSet, context: AuditContext | None = None) -> AnalyzerResult:
        ctx = context or AuditContext()
        cfg = self.config()
        if data.annotations is None or len(data.annotations) == 0:
            return AnalyzerResult.skip(self.name, "no annotations given (--annotations)", cfg)
        votes, dropped = clean_votes(data.annotations.df)
        if votes.height == 0:
            return AnalyzerResult.skip(self.name, f"no usable votes ({dropped} without a label)", cfg)
        metrics = agreement_metrics(votes, n_boot=self.n_boot, seed=ctx.seed)
        metrics["agreement.position_bias"] = position_bias(votes, n_boot=self.n_boot, seed=ctx.seed)
        fit = dawid_skene(votes, n_iter=self.ds_iter)
        annotators = annotator_table(votes, fit, margin=self.margin, min_shared=self.min_shared)
        metrics["agreement.flagged_annotators"] = Metric.count(int(annotators["flag"].sum()),
                                                               "annotators reliably worse than the crowd")
        if dropped:
            cfg = {**cfg, "votes_dropped": dropped}
        pairs = data.df.select(pl.col("pair_id").cast(pl.Utf8)).join(pair_agreement(votes), on="pair_id", how="left")
        pairs = pairs.with_columns(pl.col("agreement_flag").fill_null(False))
        details = {"annotators": annotators, "cohen_kappa": cohen_kappa_pairs(votes, n_boot=self.n_boot, seed=ctx.seed),
                   "confusion": fit.confusion, "priors": fit.priors}
        return AnalyzerResult(self.name, metrics, pairs, details, None, cfg)


@register_plot("agreement")
def plot_agreement(result: AnalyzerResult) -> matplotlib.figure.Figure:
    """Left: Dawid–Skene accuracy per annotator with 95% CI (flagged in red). Right: pairwise Cohen's kappa."""
    fig = new_figure(8.0, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    ann = result.details.get("annotators")
    if isinstance(ann, pl.DataFrame) and ann.height:
        a = ann.filter(pl.col("ds_accuracy").is_not_null())
        pos = np.arange(a.height)
        acc = a["ds_accuracy"].to_numpy()
        lo = np.nan_to_num(acc - a["ds_ci_lo"].to_numpy().astype(float))
        hi = np.nan_to_num(a["ds_ci_hi"].to_numpy().astype(float) - acc)
        colors = ["#c0392b" if f else "#1f5fa8" for f in a["flag"].to_list()]
        ax1.errorbar(acc, pos, xerr=[lo, hi], fmt="none", ecolor="#555")
        ax1.scatter(acc, pos, c=colors, zorder=3)
        ax1.set_yticks(pos, a["annotator_id"].to_list(), fontsize=7)
        ax1.set_xlim(0, 1)
    ax1.set_xlabel("Dawid–Skene accuracy")
    ax1.set_title("annotators (red: flagged)", fontsize=9)
    kap = result.details.get("cohen_kappa")
    if isinstance(kap, pl.DataFrame) and kap.height:
        names = sorted(set(kap["annotator_1"].to_list()) | set(kap["annotator_2"].to_list()))
        idx = {n: i for i, n in enumerate(names)}
        m = np.full((len(names), len(names)), np.nan)
        for a1, a2, k in kap.select("annotator_1", "annotator_2", "kappa").iter_rows():
            if k is not None:
                m[idx[a1], idx[a2]] = m[idx[a2], idx[a1]] = k
        im = ax2.imshow(m, vmin=-1, vmax=1, cmap="RdBu")
        ax2.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax2.set_yticks(range(len(names)), names, fontsize=6)
        fig.colorbar(im, ax=ax2, shrink=0.8)
    ax2.set_title("pairwise Cohen's kappa", fontsize=9)
    return fig
