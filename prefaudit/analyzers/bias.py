"""Length/verbosity bias and surface shortcuts: does the recorded preference follow the surface?

Pure functions underneath and :class:`BiasAnalyzer` on top. Pairs marked ``tie`` are left out of every
statistic (their chosen side is arbitrary) and get score 1 / flag False.

- **Chosen-longer rate**: share of pairs whose chosen response is strictly longer, in characters
  (``length.chosen_longer_rate``), words and, with ``context.tokenizer``, tokens; Wilson CIs. Pairs of
  equal length count as not longer (their number is in the note). The sign is reported, never assumed.
- **Swap-symmetric logistic regression** (``length.log_ratio_coef``): every pair enters twice,
  as (x, chosen) and (-x, not chosen) with x = log((len_chosen + 1) / (len_rejected + 1)) in
  characters, without intercept, so the fit cannot depend on which side is called a or b; fitted by
  Newton's method with standard errors clustered by pair (the two rows of a pair are one
  observation), the numbers of statsmodels' ``Logit`` with ``cov_type="cluster"`` (tested).
  A positive coefficient: longer responses win. CI is Wald; the p-value is ``length.log_ratio_p``.
- **Win rate by length-difference bins**: the longer response's win rate per bin of |x|.
- **Surface features** (:mod:`prefaudit.analyzers.surface`): per feature, among pairs where exactly
  one side has it (for chars/words: where they differ, "has" = more), the rate at which that side is
  chosen, with a Wilson CI and a two-sided binomial p-value; ``direction`` names the side the feature
  goes with when the CI excludes 0.5.
- **Shortcut model** (``shortcut.auroc``): a logistic regression on surface-feature *differences*
  only (log1p counts, chosen minus rejected), fitted swap-symmetrically (no intercept, both
  orientations) with ``n_folds``-fold cross-validation by pair. Its out-of-fold probability that
  the chosen side wins is scored against the mirrored probability for the rejected side; the AUROC of
  that ranking has a percentile bootstrap CI over pairs (above 50,000 pairs a DeLong-type normal
  interval, which agrees with it there). 0.5: surface features say nothing about the
  label; high: a model can lower its DPO loss from the surface alone without learning the task.
- **Per pair**: ``bias_surface_prob`` is that out-of-fold probability p. ``bias_score`` =
  min(1, 2 (1 - p)): 1 when the surface is neutral or favours the rejected side, 0 when the surface
  alone makes the recorded choice certain. ``bias_flag``: p >= ``flag_prob`` while the shortcut
  model is informative (AUROC CI above 0.5) — pairs whose label the shortcut alone predicts, which
  teach the shortcut whatever their content.
- **Breakdowns** by metadata columns (``context.by``): chosen-longer rate and coefficient per group.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from scipy.special import expit

from prefaudit.analyzers.base import AnalyzerResult, AuditContext, Metric
from prefaudit.analyzers.surface import FEATURES, feature_exprs
from prefaudit.plots import new_figure, register_plot
from prefaudit.stats import Z95, bootstrap_interval, mean_interval, sign_test_p, wilson_interval
from prefaudit.threads import limited_threads

if TYPE_CHECKING:
    import matplotlib.figure

    from prefaudit.data.preference_set import PreferenceSet

#: Upper edges of the |log length ratio| bins (characters); the last bin is open.
BIN_EDGES: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)


# ---- lengths ---------------------------------------------------------------------------------------------
def token_lengths(tokenizer: Any, texts: list[str]) -> np.ndarray:
    """Number of tokens per text (no special tokens) with a Hugging Face-style tokenizer, or any
    object with ``encode(text) -> list``."""
    try:
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    except TypeError:
        ids = [tokenizer.encode(t) for t in texts]
    return np.array([len(i) for i in ids], dtype=np.int64)


def chosen_longer_rate(len_chosen: np.ndarray, len_rejected: np.ndarray, unit: str = "characters") -> Metric:
    """Share of pairs whose chosen response is strictly longer (Wilson CI); ties in length count as not."""
    len_chosen, len_rejected = np.asarray(len_chosen), np.asarray(len_rejected)
    n = len_chosen.size
    equal = int((len_chosen == len_rejected).sum())
    return Metric.proportion(int((len_chosen > len_rejected).sum()), n,
                             f"{unit}; {equal} pairs of equal length count as not longer" if equal else unit)


def log_ratio(len_chosen: np.ndarray, len_rejected: np.ndarray) -> np.ndarray:
    """x = log((len_chosen + 1) / (len_rejected + 1)) (the +1 keeps empty responses finite)."""
    return np.log((np.asarray(len_chosen, float) + 1) / (np.asarray(len_rejected, float) + 1))


def symmetric_logit(x: np.ndarray, max_iter: int = 100) -> tuple[float, float]:
    """(coefficient, pair-clustered standard error) of the swap-symmetric logistic regression.

    The maximum-likelihood b of sum log sigmoid(b x_i) by Newton's method with step halving — the
    fit of (x_i, 1) and (-x_i, 0) without intercept — and the sandwich standard error clustered by
    pair with statsmodels' small-sample factor G / (G - 1) (``Logit(...).fit(cov_type="cluster")``
    gives the same numbers; tested). Needs x that do not all have one sign.
    """
    x = np.asarray(x, float)

    def loglik(b: float) -> float:
        return -float(np.logaddexp(0.0, -b * x).sum())

    b = 0.0
    for _ in range(max_iter):
        q = expit(b * x)
        grad = float(((1 - q) * x).sum())
        hess = float((q * (1 - q) * x * x).sum())
        step = grad / hess
        current = loglik(b)
        while loglik(b + step) < current and abs(step) > 1e-15:
            step /= 2
        b += step
        if abs(step) <= 1e-12 * (1 + abs(b)):
            break
    q = expit(b * x)
    hess = float((q * (1 - q) * x * x).sum())
    meat = float((((1 - q) * x) ** 2).sum())
    n = x.size
    return b, math.sqrt(meat * n / (n - 1)) / hess


def log_ratio_logit(x: np.ndarray) -> tuple[Metric, Metric]:
    """Swap-symmetric logistic regression of "chosen" on x (see the module docstring).

    Returns (coefficient with its 95% Wald CI from pair-clustered standard errors, p-value).
    """
    x = np.asarray(x, float)
    n = x.size
    nz = x[x != 0]
    if n < 3 or nz.size == 0:
        why = "fewer than 3 pairs" if n < 3 else "every pair has equal lengths"
        return Metric.undefined(why, n), Metric.undefined(why, n)
    if (nz > 0).all() or (nz < 0).all():
        why = "perfect separation: the " + ("longer" if (nz > 0).all() else "shorter") + \
              " response is always chosen (coefficient is infinite)"
        return Metric.undefined(why, n), Metric(0.0, None, n, why)
    coef, se = symmetric_logit(x)
    lo, hi = coef - Z95 * se, coef + Z95 * se
    p = math.erfc(abs(coef / se) / math.sqrt(2)) if se > 0 else 0.0
    return (Metric(coef, (lo, hi), n, f"p = {p:.3g}; log-odds per unit log length ratio (characters)",
                   "wald, pair-clustered"),
            Metric(p, None, n, "two-sided Wald test of the coefficient", "wald"))


def win_rate_by_bins(x: np.ndarray, edges: tuple[float, ...] = BIN_EDGES) -> pl.DataFrame:
    """The longer response's win rate (Wilson CI) per bin of |x|; pairs of equal length are left out."""
    x = np.asarray(x, float)
    ax = np.abs(x)
    lows = (0.0, *edges)
    highs = (*edges, float("inf"))
    rows = []
    for lo, hi in zip(lows, highs, strict=True):
        m = (ax > lo if lo == 0 else ax >= lo) & (ax < hi)
        n = int(m.sum())
        k = int((x[m] > 0).sum())
        ci = wilson_interval(k, n)
        rows.append({"bin": f"[{lo:g}, {hi:g})", "abs_log_ratio_lo": lo, "abs_log_ratio_hi": hi, "n": n,
                     "longer_chosen_rate": k / n if n else None,
                     "ci_lo": ci[0] if ci else None, "ci_hi": ci[1] if ci else None})
    return pl.DataFrame(rows, schema={"bin": pl.Utf8, "abs_log_ratio_lo": pl.Float64,
                                      "abs_log_ratio_hi": pl.Float64, "n": pl.Int64,
                                      "longer_chosen_rate": pl.Float64, "ci_lo": pl.Float64,
                                      "ci_hi": pl.Float64})


# ---- surface features --------------------------------------------------------------------------------------
def pair_features(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Surface feature counts of the chosen and of the rejected responses (same column names)."""
    fc = df.select(feature_exprs("chosen"))
    fr = df.select(feature_exprs("rejected"))
    return fc, fr


def feature_effects(fc: pl.DataFrame, fr: pl.DataFrame) -> pl.DataFrame:
    """Per feature: among pairs where one side has it and the other not (chars/words: where they
    differ; "has" = more), how often the side having it is chosen — with Wilson CI, binomial p-value,
    and ``direction`` ("chosen", "rejected" or "none" when the CI contains 0.5)."""
    rows = []
    n_pairs = fc.height
    for f in fc.columns:
        c, r = fc[f].to_numpy().astype(float), fr[f].to_numpy().astype(float)
        if f in ("chars", "words"):
            differ, has_c = c != r, c > r
            what = f"more {FEATURES[f]}"
        else:
            differ, has_c = (c > 0) != (r > 0), c > 0
            what = FEATURES[f]
        n = int(differ.sum())
        k = int((has_c & differ).sum())
        ci = wilson_interval(k, n)
        direction = "none"
        if ci is not None and ci[0] > 0.5:
            direction = "chosen"
        elif ci is not None and ci[1] < 0.5:
            direction = "rejected"
        rows.append({
            "feature": f, "description": what,
            "chosen_has_share": float((c > 0).mean()) if n_pairs else None,
            "rejected_has_share": float((r > 0).mean()) if n_pairs else None,
            "n_differ": n, "chosen_rate": k / n if n else None,
            "ci_lo": ci[0] if ci else None, "ci_hi": ci[1] if ci else None,
            "p_value": sign_test_p(k, n) if n else None, "direction": direction})
    return pl.DataFrame(rows, schema={
        "feature": pl.Utf8, "description": pl.Utf8, "chosen_has_share": pl.Float64,
        "rejected_has_share": pl.Float64, "n_differ": pl.Int64, "chosen_rate": pl.Float64,
        "ci_lo": pl.Float64, "ci_hi": pl.Float64, "p_value": pl.Float64, "direction": pl.Utf8})


def feature_differences(fc: pl.DataFrame, fr: pl.DataFrame) -> np.ndarray:
    """Design matrix of the shortcut model: log1p(count chosen) - log1p(count rejected) per feature."""
    return np.log1p(fc.to_numpy().astype(float)) - np.log1p(fr.to_numpy().astype(float))


class _MirroredAUROC:
    """AUROC of scores p for the chosen sides against 1 - p for the rejected sides (mirrored pairs),
    i.e. P(p_i > 1 - p_j) over all (i, j) with ties counting half — O(n) per (re)weighting."""

    def __init__(self, p: np.ndarray) -> None:
        u = np.asarray(p, float) - 0.5
        self.order = np.argsort(u, kind="stable")
        su = u[self.order]
        # for each i: sorted positions of the j with u_j > -u_i (from gt) and u_j >= -u_i (from ge)
        self.gt = np.searchsorted(su, -u, side="right")
        self.ge = np.searchsorted(su, -u, side="left")
        self.n = u.size

    def _wins(self, w: np.ndarray) -> np.ndarray:
        """Per i: weight of the j with u_j > -u_i, plus half the weight of ties."""
        tail = np.r_[np.cumsum(w[self.order][::-1])[::-1], 0.0]  # tail[k] = weight of sorted positions >= k
        above = tail[self.gt]
        return above + 0.5 * (tail[self.ge] - above)

    def __call__(self, weights: np.ndarray | None = None) -> float:
        w = np.ones(self.n) if weights is None else np.asarray(weights, float)
        total = w.sum()
        if total <= 0:
            return float("nan")
        return float((w * self._wins(w)).sum() / (total * total))

    def normal_interval(self, z: float = Z95) -> tuple[float, float] | None:
        """95% CI from the U-statistic (Hoeffding/DeLong) variance: 4 Var_i(P_j(u_i + u_j > 0)) / n."""
        if self.n < 2:
            return None
        g = self._wins(np.ones(self.n)) / self.n
        auc, se = float(g.mean()), 2.0 * float(g.std(ddof=1)) / np.sqrt(self.n)
        return max(0.0, auc - z * se), min(1.0, auc + z * se)


def symmetric_auroc(p: np.ndarray) -> float:
    """AUROC of scores p for the chosen sides against 1 - p for the rejected sides (mirrored pairs)."""
    p = np.asarray(p, float)
    return _MirroredAUROC(p)() if p.size else float("nan")


def shortcut_model(x: np.ndarray, *, n_folds: int = 5, seed: int = 0, n_boot: int = 500,
                   c: float = 1.0, max_boot_pairs: int = 50_000) -> tuple[np.ndarray, Metric, np.ndarray]:
    """Cross-validated swap-symmetric logistic regression on feature differences ``x`` (pairs x features).

    Returns (out-of-fold probability that the chosen side wins, per pair; AUROC Metric with a
    percentile bootstrap CI over pairs — above ``max_boot_pairs`` pairs, where the bootstrap gets
    slow and the normal approximation is accurate, the U-statistic (DeLong) variance instead;
    coefficients of the model fitted on all pairs, per standardised feature).
    """
    from prefaudit.analyzers.noise_model import fit_symmetric_logistic

    n, d = x.shape
    if n < max(2 * n_folds, 10):
        return np.full(n, 0.5), Metric.undefined(f"too few pairs ({n}) for {n_folds}-fold CV", n), np.zeros(d)
    scale = np.sqrt((x ** 2).mean(axis=0))  # sd of the mirrored data (mean 0)
    xs = x / np.where(scale > 0, scale, 1.0)
    folds = np.random.default_rng(seed).permutation(n) % n_folds
    oof = np.empty(n)
    for f in range(n_folds):
        test = folds == f
        oof[test] = expit(xs[test] @ fit_symmetric_logistic(xs[~test], c))
    mirrored = _MirroredAUROC(oof)
    auc = mirrored()
    if n <= max_boot_pairs:
        ci = bootstrap_interval(lambda idx: mirrored(np.bincount(idx, minlength=n)), n, seed=seed, n_boot=n_boot)
        method = "percentile bootstrap over pairs"
    else:
        ci, method = mirrored.normal_interval(), "U-statistic (DeLong) normal approximation"
    coefs = fit_symmetric_logistic(xs, c)
    metric = Metric(auc, ci, n, f"{n_folds}-fold CV, surface features only ({d} features)", method)
    return oof, metric, coefs


# ---- breakdowns ------------------------------------------------------------------------------------------
def breakdown_by(df: pl.DataFrame, column: str, x: np.ndarray, max_groups: int = 50) -> pl.DataFrame:
    """Per value of ``column``: pairs, chosen-longer rate (characters, Wilson CI), log-ratio coefficient."""
    keys = df[column].cast(pl.Utf8).fill_null("(null)").to_numpy()
    values, counts = np.unique(keys, return_counts=True)
    order = np.argsort(-counts)[:max_groups]
    rows = []
    for v in values[order]:
        m = keys == v
        rate = chosen_longer_rate(x[m] > 0, x[m] < 0) if m.any() else Metric.undefined("empty")
        coef, p = log_ratio_logit(x[m]) if m.sum() >= 30 else (Metric.undefined("n < 30"), None)
        rows.append({column: str(v), "n": int(m.sum()), "chosen_longer_rate": rate.value,
                     "ci_lo": rate.ci[0] if rate.ci else None, "ci_hi": rate.ci[1] if rate.ci else None,
                     "log_ratio_coef": coef.value, "coef_ci_lo": coef.ci[0] if coef.ci else None,
                     "coef_ci_hi": coef.ci[1] if coef.ci else None,
                     "p_value": p.value if p is not None else None})
    return pl.DataFrame(rows, schema={column: pl.Utf8, "n": pl.Int64, "chosen_longer_rate": pl.Float64,
                                      "ci_lo": pl.Float64, "ci_hi": pl.Float64, "log_ratio_coef": pl.Float64,
                                      "coef_ci_lo": pl.Float64, "coef_ci_hi": pl.Float64,
                                      "p_value": pl.Float64})


# ---- the analyzer ---------------------------------------------------------------------------------------
class BiasAnalyzer:
    """Length/verbosity bias and surface shortcuts (module docstring: every statistic and the score).

    Parameters: ``n_folds`` (shortcut-model cross-validation), ``n_boot`` (bootstrap resamples of the
    AUROC), ``flag_prob`` (surface probability above which a pair is flagged), ``c`` (inverse L2
    strength of the shortcut model), ``max_groups`` (groups per breakdown), ``threads`` (BLAS/OpenMP
    threads for the small model fits; None leaves the library default).
    """

    name = "bias"

    def __init__(self, *, n_folds: int = 5, n_boot: int = 500, flag_prob: float = 0.8, c: float = 1.0,
                 max_groups: int = 50, threads: int | None = 1) -> None:
        self.n_folds = n_folds
        self.n_boot = n_boot
        self.flag_prob = flag_prob
        self.c = c
        self.max_groups = max_groups
        self.threads = threads

    def config(self) -> dict[str, Any]:
        return {"n_folds": self.n_folds, "n_boot": self.n_boot, "flag_prob": self.flag_prob, "c": self.c,
                "max_groups": self.max_groups, "threads": self.threads}

    def run(self, data: PreferenceSet, context: AuditContext | None = None) -> AnalyzerResult:
        with limited_threads(self.threads):  # numpy's BLAS (no OpenMP library is used here)
            return self._run(data, context)

    def _run(self, data: PreferenceSet, context: AuditContext | None) -> AnalyzerResult:
        ctx = context or AuditContext()
        cfg = self.config()
        full = data.df if hasattr(data, "df") else data
        tie = full["tie"].fill_null(False) if "tie" in full.columns else pl.Series([False] * full.height)
        df = full.filter(~tie)
        if df.height == 0:
            return AnalyzerResult.skip(self.name, "no non-tie pairs", cfg)
        n = df.height
        fc, fr = pair_features(df)
        lc, lr = fc["chars"].to_numpy(), fr["chars"].to_numpy()
        x = log_ratio(lc, lr)
        coef, p = log_ratio_logit(x)
        metrics: dict[str, Metric] = {
            "length.chosen_longer_rate": chosen_longer_rate(lc, lr, "characters"),
            "length.chosen_longer_rate_words": chosen_longer_rate(fc["words"].to_numpy(),
                                                                  fr["words"].to_numpy(), "words"),
        }
        if ctx.tokenizer is not None:
            tc = token_lengths(ctx.tokenizer, df["chosen"].to_list())
            tr = token_lengths(ctx.tokenizer, df["rejected"].to_list())
            metrics["length.chosen_longer_rate_tokens"] = chosen_longer_rate(tc, tr, "tokens")
        metrics["length.log_ratio_coef"] = coef
        metrics["length.log_ratio_p"] = p
        metrics["length.mean_log_ratio"] = Metric(float(x.mean()), mean_interval(x), n,
                                                  "mean log((len chosen + 1) / (len rejected + 1)), characters",
                                                  "normal")
        xd = feature_differences(fc, fr)
        prob, auroc, coefs = shortcut_model(xd, n_folds=self.n_folds, seed=ctx.seed, n_boot=self.n_boot,
                                            c=self.c)
        metrics["shortcut.auroc"] = auroc
        informative = auroc.ci is not None and auroc.ci[0] > 0.5
        flag = (prob >= self.flag_prob) & informative
        metrics["bias.flagged_share"] = Metric.proportion(
            int(flag.sum()), full.height, f"surface probability >= {self.flag_prob:g} with an informative "
            "shortcut model" if informative else "shortcut model not informative (AUROC CI includes 0.5)")
        scored = pl.DataFrame({
            "pair_id": df["pair_id"].cast(pl.Utf8), "bias_score": np.minimum(1.0, 2 * (1 - prob)),
            "bias_flag": flag, "bias_surface_prob": prob, "bias_log_length_ratio": x, "bias_chosen_longer": lc > lr})
        pairs = full.select(pl.col("pair_id").cast(pl.Utf8)).join(scored, on="pair_id", how="left",
                                                                  maintain_order="left").with_columns(
            pl.col("bias_score").fill_null(1.0), pl.col("bias_flag").fill_null(False))
        details: dict[str, Any] = {
            "length_bins": win_rate_by_bins(x),
            "effects": feature_effects(fc, fr),
            "shortcut_coefficients": pl.DataFrame({"feature": fc.columns, "coef": coefs}),
        }
        for col in ctx.by:
            if col in df.columns:
                details[f"by_{col}"] = breakdown_by(df, col, x, self.max_groups)
        return AnalyzerResult(name=self.name, metrics=metrics, pairs=pairs, details=details, config=cfg)


@register_plot("bias")
def plot_bias(result: AnalyzerResult) -> matplotlib.figure.Figure:
    """Left: the longer response's win rate by |log length ratio| bin. Right: per surface feature, the
    rate at which the side having it is chosen. Both with 95% CIs around the neutral 0.5."""
    fig = new_figure(8.0, 3.6)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1, 1.3])
    bins = result.details.get("length_bins")
    if isinstance(bins, pl.DataFrame) and bins.height:
        b = bins.filter(pl.col("n") > 0)
        pos = np.arange(b.height)
        ax1.errorbar(pos, b["longer_chosen_rate"], yerr=[b["longer_chosen_rate"] - b["ci_lo"],
                                                         b["ci_hi"] - b["longer_chosen_rate"]], fmt="o")
        ax1.set_xticks(pos, b["bin"].to_list(), rotation=30, fontsize=7)
    ax1.axhline(0.5, color="#999", linestyle="--")
    ax1.set_ylim(0, 1)
    ax1.set_xlabel("|log length ratio| (characters)")
    ax1.set_ylabel("longer response chosen")
    eff = result.details.get("effects")
    if isinstance(eff, pl.DataFrame) and eff.height:
        e = eff.filter(pl.col("n_differ") > 0)
        pos = np.arange(e.height)
        colors = ["#c0504d" if d == "rejected" else "#1f5fa8" if d == "chosen" else "#777"
                  for d in e["direction"]]
        for i, r in enumerate(e.iter_rows(named=True)):
            ax2.plot([r["ci_lo"], r["ci_hi"]], [i, i], color=colors[i])
            ax2.plot([r["chosen_rate"]], [i], "o", color=colors[i])
        ax2.set_yticks(pos, [f"{f} (n={k})" for f, k in zip(e["feature"], e["n_differ"], strict=True)],
                       fontsize=7)
    ax2.axvline(0.5, color="#999", linestyle="--")
    ax2.set_xlim(0, 1)
    ax2.set_xlabel("side having the feature is chosen")
    auc = result.metrics.get("shortcut.auroc")
    fig.suptitle(f"length and surface bias — shortcut AUROC {auc}" if auc else "length and surface bias",
                 fontsize=9)
    return fig
