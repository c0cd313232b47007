"""Label noise: which recorded preferences are likely wrong, and how many.

:class:`NoiseAnalyzer` has two sources of evidence, chosen by the data:

- **With annotations** (several votes per pair): the Dawid–Skene fit
  (:mod:`prefaudit.analyzers.dawid_skene`) gives each pair a posterior over its true label; the
  probability that the recorded preference (``chosen_side``, or ``tie``) is wrong is one minus the
  posterior of the recorded label. ``noise.estimated_rate`` is the mean of that probability
  (bootstrap CI over pairs); ``noise.split_vote_share`` is the share of multi-voted pairs without a
  strict majority. Pairs without votes get a null score; a pair rated only by raters who share no
  item with anyone (their accuracy is not identifiable: EM makes them perfect) is scored with the
  median accuracy of the identifiable raters (``noise.lone_rater_pairs`` counts them).
- **Without annotations**: the cross-fitted, swap-symmetric preference model of
  :mod:`prefaudit.analyzers.noise_model` (TF-IDF, relevance and surface features, plus response
  embeddings and embedding relevance when ``context.embedder`` is set — without it, the
  ``--no-embeddings`` fast path, the model says so in ``config["features"]``). Its out-of-fold logits
  feed a symmetric label-flip model whose floor rho is ``noise.estimated_rate`` (percentile bootstrap
  CI over pairs, refitting the flip model; a note when the CI is wide, i.e. rho weakly identified);
  each pair's posterior probability of a flip follows.
  ``noise.model_accuracy``: out-of-fold agreement of the model with the recorded labels (how much the
  model knows; near 0.5 it knows little and the rate's CI is wide). Ties are left out (null score).

Both: ``noise_score`` = 1 - P(recorded preference wrong) (1 = looks clean); ``noise_flag``: pairs
whose label cleanlab's ``find_label_issues`` flags on the out-of-fold probabilities (model), or whose
posterior of being wrong exceeds 1/2 (annotations). Contradictions from the hygiene analyzer
(:func:`prefaudit.analyzers.hygiene.contradiction_groups`: the same prompt and responses labeled both
ways) feed in: at least one side of each group is wrong, so the side the evidence supports less
(fewer pairs; then lower mean score) is flagged with a score of at most 1/2, ``noise_contradiction``
names the group, and the estimated rate is at least the share of pairs that contradictions prove
wrong (``noise.contradiction_share`` counts every pair in a group).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prefaudit.analyzers.base import AnalyzerResult, AuditContext, Metric
from prefaudit.plots import new_figure, register_plot
from prefaudit.stats import bootstrap_interval
from prefaudit.threads import one_thread

if TYPE_CHECKING:
    import matplotlib.figure

    from prefaudit.data.preference_set import PreferenceSet

BOOT_METHOD = "percentile bootstrap over pairs"
#: From this many fitted pairs, ``n_repeats=None`` cross-fits one fold split instead of averaging three: on
#: 50,000 synthetic pairs the per-pair logits of two splits correlate at 0.993 and averaging three adds
#: 0.0005 AUROC for the injected flips (2,000 pairs: +0.005) at 3x the cost (benchmarks/RESULTS.md,
#: "Noise model at scale").
SINGLE_SPLIT_FROM = 40_000
WIDE_CI = 0.2  # a rate CI wider than this gets a "weakly identified" note


# ---- with annotations ------------------------------------------------------------------------------------
def recorded_labels(df: pl.DataFrame) -> pl.Series:
    """The recorded preference per pair as a label a / b / tie (``chosen_side``; a without it)."""
    side = df["chosen_side"] if "chosen_side" in df.columns else pl.Series(["a"] * df.height)
    tie = df["tie"].fill_null(False) if "tie" in df.columns else pl.Series([False] * df.height)
    return pl.select(pl.when(tie).then(pl.lit("tie")).otherwise(side.fill_null("a"))).to_series().alias("recorded")


def vote_noise(data: PreferenceSet, *, ds_iter: int = 100) -> pl.DataFrame:
    """Per pair with votes: ``recorded``, ``p_wrong`` (1 - Dawid–Skene posterior of the recorded label),
    ``n_votes``, ``split_vote`` (two or more votes, no strict majority) and ``identified``.

    A pair whose only rater shares no item with anyone else is not ``identified``: Dawid–Skene cannot
    estimate that rater's accuracy (EM makes a lone rater perfect), so such a pair's ``p_wrong`` uses
    the median accuracy of the identifiable raters instead: 1 - that accuracy when the recorded label
    is the rater's, the accuracy otherwise (null when no rater is identifiable).
    """
    from prefaudit.analyzers.agreement import clean_votes, leave_one_out_agreement, pair_agreement
    from prefaudit.analyzers.dawid_skene import dawid_skene

    votes, _ = clean_votes(data.annotations.df)
    fit = dawid_skene(votes, n_iter=ds_iter)
    rec = data.df.select(pl.col("pair_id").cast(pl.Utf8), recorded_labels(data.df))
    post = fit.posteriors.join(rec, on="pair_id", how="inner")
    p_rec = post.select(pl.when(pl.col("recorded") == "a").then(pl.col("p_a"))
                        .when(pl.col("recorded") == "b").then(pl.col("p_b")).otherwise(pl.col("p_tie"))).to_series()
    shared = leave_one_out_agreement(votes).filter(pl.col("n_shared") > 0)["annotator_id"].implode()
    acc = fit.accuracies.filter(pl.col("annotator_id").is_in(shared))["accuracy"]
    crowd = float(acc.median()) if acc.len() else None
    per = votes.join(rec, on="pair_id", how="inner").group_by("pair_id").agg(
        pl.col("annotator_id").is_in(shared).any().alias("identified"),
        (pl.col("label") == pl.col("recorded")).mean().alias("_f"))
    agree = pair_agreement(votes).select("pair_id", pl.col("agreement_n_votes").alias("n_votes"),
                                         pl.col("agreement_flag").alias("split_vote"))
    lone_wrong = (pl.col("_f") * (1 - crowd) + (1 - pl.col("_f")) * crowd) if crowd is not None else pl.lit(None)
    return (post.select("pair_id", "recorded", (1.0 - p_rec).clip(0.0, 1.0).alias("p_wrong"))
            .join(per, on="pair_id", how="left").join(agree, on="pair_id", how="left")
            .with_columns(pl.when(pl.col("identified")).then(pl.col("p_wrong")).otherwise(lone_wrong)
                          .cast(pl.Float64).alias("p_wrong"))
            .drop("_f"))


# ---- contradictions --------------------------------------------------------------------------------------
def contradiction_sides(df: pl.DataFrame) -> pl.DataFrame:
    """Pairs in contradiction groups (hygiene's single implementation) with their orientation ``side``
    (True when the normalised chosen text's hash is below the rejected one's: the same in every
    pair of a group that is labeled the same way)."""
    from prefaudit.analyzers.hygiene import contradiction_groups, normalized_hash

    groups = contradiction_groups(df)
    if groups.height == 0:
        return groups.with_columns(pl.lit(None, pl.Boolean).alias("side"))
    members = df.select(pl.col("pair_id").cast(pl.Utf8), "chosen", "rejected").filter(
        pl.col("pair_id").is_in(groups["pair_id"].implode()))
    sides = members.select("pair_id", (normalized_hash("chosen") < normalized_hash("rejected")).alias("side"))
    return groups.join(sides, on="pair_id", how="left")


def apply_contradictions(pairs: pl.DataFrame, sides: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Mark contradicting pairs in a per-pair frame (``pair_id``, ``noise_score``, ``noise_flag``).

    Per group, the side with fewer pairs (then the lower mean score) is taken as wrong: flagged, score
    capped at 1/2. Returns (frame with ``noise_contradiction``, number of pairs proven wrong =
    sum over groups of the smaller side).
    """
    if sides.height == 0:
        return pairs.with_columns(pl.lit(None, pl.Int64).alias("noise_contradiction")), 0
    g = sides.join(pairs.select("pair_id", "noise_score"), on="pair_id", how="left")
    per = g.group_by("contradiction_group", "side").agg(pl.len().alias("k"),
                                                         pl.col("noise_score").fill_null(0.5).mean().alias("m"))
    worse = per.sort(["contradiction_group", "k", "m"]).group_by("contradiction_group", maintain_order=True) \
        .first().select("contradiction_group", pl.col("side").alias("_wrong_side"), pl.col("k").alias("_k"))
    proven = int(worse["_k"].sum())
    g = g.join(worse, on="contradiction_group").select(
        "pair_id", "contradiction_group", (pl.col("side") == pl.col("_wrong_side")).alias("_wrong"))
    out = pairs.join(g, on="pair_id", how="left").with_columns(
        pl.when(pl.col("_wrong").fill_null(False)).then(pl.min_horizontal("noise_score", pl.lit(0.5)))
        .otherwise(pl.col("noise_score")).alias("noise_score"),
        (pl.col("noise_flag") | pl.col("_wrong").fill_null(False)).alias("noise_flag"),
    ).rename({"contradiction_group": "noise_contradiction"}).drop("_wrong")
    return out, proven


# ---- the analyzer ----------------------------------------------------------------------------------------
class NoiseAnalyzer:
    """Label-noise estimate and per-pair noise scores (module docstring: both modes).

    Parameters: ``n_folds`` (cross-fitting folds), ``n_repeats`` (cross-fits with different fold splits,
    logits averaged; None: 3, or 1 from :data:`SINGLE_SPLIT_FROM` fitted pairs), ``c`` (inverse L2 strength; None selects from
    :data:`~prefaudit.analyzers.noise_model.C_GRID` by calibrated out-of-fold likelihood), ``n_boot``
    (bootstrap resamples of the rate), ``flag_threshold`` (posterior of being wrong above which an
    annotated pair is flagged), ``use_annotations`` (False: use the model even when votes exist),
    ``max_features`` (TF-IDF vocabulary), ``ds_iter`` (Dawid–Skene iterations), ``fit_pairs`` (model
    mode: above this many non-tie pairs, the model is cross-fitted on a seeded sample of this size —
    the rate, its CI and the calibration come from it — and every other pair is scored by the model
    fitted on the whole sample, out of sample like the cross-fitted ones, in chunks of bounded memory;
    None: every pair is cross-fitted).
    """

    name = "noise"

    def __init__(self, *, n_folds: int = 5, n_repeats: int | None = None, c: float | None = 0.1, n_boot: int = 200, flag_threshold: float = 0.5,
                 use_annotations: bool = True, max_features: int = 200_000, ds_iter: int = 100,
                 fit_pairs: int | None = None) -> None:
        self.n_folds = n_folds
        self.n_repeats = n_repeats
        self.c = c
        self.n_boot = n_boot
        self.flag_threshold = flag_threshold
        self.use_annotations = use_annotations
        self.max_features = max_features
        self.ds_iter = ds_iter
        self.fit_pairs = fit_pairs

    def config(self) -> dict[str, Any]:
        return {"n_folds": self.n_folds, "n_repeats": self.n_repeats, "c": self.c, "n_boot": self.n_boot, "flag_threshold": self.flag_threshold,
                "use_annotations": self.use_annotations, "max_features": self.max_features, "ds_iter": self.ds_iter,
                "fit_pairs": self.fit_pairs}

    def run(self, data: PreferenceSet, context: AuditContext | None = None) -> AnalyzerResult:
        ctx = context or AuditContext()
        cfg = self.config()
        if data.df.height == 0:
            return AnalyzerResult.skip(self.name, "no pairs", cfg)
        if self.use_annotations and data.has_annotations:
            return self._from_votes(data, ctx, cfg)
        return self._from_model(data, ctx, cfg)

    # -- annotations
    def _from_votes(self, data: PreferenceSet, ctx: AuditContext, cfg: dict[str, Any]) -> AnalyzerResult:
        v = vote_noise(data, ds_iter=self.ds_iter)
        n_lone = int((~v["identified"]).sum())
        v = v.filter(pl.col("p_wrong").is_not_null())
        p = v["p_wrong"].to_numpy()
        n = p.size
        if n == 0:
            return AnalyzerResult.skip(self.name, "no rater shares an item with another: accuracies not identifiable",
                                       cfg)
        rate = Metric(float(p.mean()), bootstrap_interval(lambda i: float(p[i].mean()), n, seed=ctx.seed,
                                                          n_boot=self.n_boot), n,
                      "mean Dawid–Skene probability that the recorded label is wrong", BOOT_METHOD)
        pairs = data.df.select(pl.col("pair_id").cast(pl.Utf8)).join(
            v.select("pair_id", (1.0 - pl.col("p_wrong")).alias("noise_score"),
                     (pl.col("p_wrong") > self.flag_threshold).alias("noise_flag"),
                     pl.col("split_vote").alias("noise_split_vote"), pl.col("n_votes").alias("noise_n_votes")),
            on="pair_id", how="left").with_columns(pl.col("noise_flag").fill_null(False))
        pairs, proven = apply_contradictions(pairs, contradiction_sides(data.df))
        multi = v.filter(pl.col("n_votes") >= 2)
        metrics = {
            "noise.estimated_rate": _at_least(rate, proven, data.df.height),
            "noise.flagged_share": Metric.proportion(int(pairs["noise_flag"].sum()), pairs.height,
                                                     f"P(wrong) > {self.flag_threshold:g} or a contradiction"),
            "noise.split_vote_share": Metric.proportion(int(multi["split_vote"].sum()), multi.height,
                                                        "pairs with two or more votes and no strict majority"),
            "noise.contradiction_share": _contradiction_share(pairs),
            "noise.unscored_pairs": Metric.count(data.df.height - n, "pairs without votes (score null)"),
            "noise.lone_rater_pairs": Metric.count(n_lone, "pairs rated only by raters who share no item with "
                                                   "another: scored with the crowd's median accuracy"),
        }
        cfg = {**cfg, "source": "annotations (Dawid–Skene posterior)"}
        return AnalyzerResult(self.name, metrics, pairs, {}, None, cfg)

    # -- model
    def _from_model(self, data: PreferenceSet, ctx: AuditContext, cfg: dict[str, Any]) -> AnalyzerResult:
        from prefaudit.analyzers import noise_model as nm

        df = data.df
        tie = df["tie"].fill_null(False) if "tie" in df.columns else pl.Series([False] * df.height)
        d = df.filter(~tie)
        n = d.height
        if n < 2 * self.n_folds:
            return AnalyzerResult.skip(self.name, f"too few non-tie pairs ({n}) for {self.n_folds}-fold "
                                                  "cross-fitting", cfg)
        fit = np.arange(n)
        if self.fit_pairs is not None and 2 * self.n_folds <= self.fit_pairs < n:
            fit = np.sort(np.random.default_rng(ctx.seed).choice(n, self.fit_pairs, replace=False))
        fit_df = d if fit.size == n else d[fit]
        fp, fc, fr = (fit_df[col].to_list() for col in ("prompt", "chosen", "rejected"))
        feats = nm.difference_features(fp, fc, fr, embedder=ctx.embedder, max_features=self.max_features)
        folds = nm.prompt_folds(fp, self.n_folds, ctx.seed)
        if self.c is None:
            c, first, grid = nm.select_c(feats.x, folds)
        else:
            c, first, grid = self.c, None, {}
        repeats = self.n_repeats if self.n_repeats is not None else 1 if fit.size >= SINGLE_SPLIT_FROM else 3
        with one_thread():
            s_fit = nm.repeated_crossfit(feats.x, fp, c, k=self.n_folds, repeats=repeats, seed=ctx.seed,
                                         first=first)
            beta, rho, _ = nm.fit_flip_calibration(s_fit)
        s = np.empty(n)
        s[fit] = s_fit
        if fit.size < n:  # the rest: scored by the model fitted on the whole sample
            rest = np.setdiff1d(np.arange(n), fit)
            w = nm.fit_symmetric_logistic(feats.x, c)
            r = d[rest]
            s[rest] = nm.score_pairs(w, feats, r["prompt"], r["chosen"], r["rejected"], embedder=ctx.embedder)
        p_wrong = nm.flip_posterior(s, beta, rho)
        m = fit.size

        def boot_rho(idx: np.ndarray) -> float:
            w = np.bincount(idx, minlength=m).astype(float)
            return nm.fit_flip_calibration(s_fit, weights=w, start=(beta, max(rho, 0.01)))[1]

        with one_thread():
            ci = bootstrap_interval(boot_rho, m, seed=ctx.seed, n_boot=self.n_boot)
        note = "label-flip floor of the cross-fitted preference model"
        if m < n:
            note += f" (fitted on a random sample of {m:,} of {n:,} pairs; every pair scored)"
        if ci is None or ci[1] - ci[0] > WIDE_CI:
            note += ("; weakly identified (the model's confidence reaches no plateau): read the CI, "
                     "not the point value")
        rate = Metric(rho, ci, m, note, BOOT_METHOD + " (flip model refitted)")
        flags = _cleanlab_flags(s, ctx.seed)
        pairs = df.select(pl.col("pair_id").cast(pl.Utf8)).join(pl.DataFrame({
            "pair_id": d["pair_id"].cast(pl.Utf8), "noise_score": 1.0 - p_wrong, "noise_flag": flags,
            "noise_logit": s}), on="pair_id", how="left").with_columns(pl.col("noise_flag").fill_null(False))
        pairs, proven = apply_contradictions(pairs, contradiction_sides(df))
        metrics = {
            "noise.estimated_rate": _at_least(rate, proven, df.height),
            "noise.flagged_share": Metric.proportion(int(pairs["noise_flag"].sum()), pairs.height,
                                                     "cleanlab find_label_issues on out-of-fold probabilities, "
                                                     "or a contradiction"),
            "noise.model_accuracy": Metric.proportion(int((s > 0).sum()), n,
                                                      "out-of-fold (or out-of-sample) agreement of the model with "
                                                      "the recorded labels"),
            "noise.contradiction_share": _contradiction_share(pairs),
            "noise.ties_left_out": Metric.count(int(tie.sum()), "tie pairs (no preference to be wrong; score null)"),
        }
        features = feats.blocks
        cfg = {**cfg, "source": "cross-fitted preference model", "features": features, "c_selected": c,
               "embeddings": ctx.embedder is not None,
               "note": None if ctx.embedder is not None else
               "no embedder (--no-embeddings): TF-IDF, TF-IDF relevance and surface features only"}
        details = {"model": {"c": c, "c_grid_nll": {str(k): v for k, v in grid.items()}, "beta": beta, "rho": rho,
                             "features": features, "n_folds": self.n_folds, "n_repeats": repeats,
                             "fit_pairs": m, "scored_out_of_sample": n - m},
                   "calibration": calibration_table(s_fit, beta, rho)}
        return AnalyzerResult(self.name, metrics, pairs, details, None, cfg)


def _at_least(rate: Metric, proven: int, n: int) -> Metric:
    """The rate, raised to the share of pairs that contradictions prove wrong when that is higher."""
    if proven == 0 or n == 0 or rate.value is None or rate.value >= proven / n:
        return rate
    lo = proven / n
    ci = None if rate.ci is None else (max(rate.ci[0], lo), max(rate.ci[1], lo))
    return Metric(lo, ci, rate.n, f"{rate.note}; raised to the {proven} pairs contradictions prove wrong",
                  rate.method)


def _contradiction_share(pairs: pl.DataFrame) -> Metric:
    k = int(pairs["noise_contradiction"].is_not_null().sum())
    return Metric.proportion(k, pairs.height, "pairs labeled both ways (hygiene contradictions)")


def _cleanlab_flags(s: np.ndarray, seed: int) -> np.ndarray:
    """cleanlab's find_label_issues on the out-of-fold probabilities, pairs in a seeded random orientation
    (cleanlab needs both classes; the model is swap-symmetric, so the orientation changes nothing else).
    Computed by :func:`find_label_issues` (cleanlab's algorithm; importing cleanlab costs ~2 s)."""
    from scipy.special import expit

    flip = np.random.default_rng(seed).random(s.size) < 0.5
    labels = np.where(flip, 0, 1)
    p1 = expit(np.where(flip, -s, s))  # P(class 1 = "a is better") with a = chosen unless flipped
    if labels.min() == labels.max():
        return np.zeros(s.size, dtype=bool)
    return find_label_issues(labels, np.column_stack([1 - p1, p1]))


_FPC = 1e-6  # cleanlab's FLOATING_POINT_COMPARISON (and twice it: the confident thresholds' floor)


def _round_rows(m: np.ndarray) -> np.ndarray:
    """cleanlab's round_preserving_row_totals: round each row to integers keeping its (rounded) sum."""
    out = []
    for floats in np.asarray(m, dtype=float):
        ints = floats.round()
        orig, cur = np.sum(floats).round(), np.sum(ints).round()
        while abs(cur - orig) > _FPC:
            diff = np.round(orig - cur)
            inc = -1 if int(diff < 0.0) else 1
            for i in np.argsort(floats - ints)[::-inc][:min(int(abs(diff)), len(floats))]:
                ints[i] += inc
            cur = np.sum(ints).round()
        out.append(ints.astype(int))
    return np.array(out).astype(int)


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Boolean mask of likely label errors: cleanlab 2.x ``filter.find_label_issues(labels, pred_probs)``
    with its defaults (``prune_by_noise_rate``, calibrated confident joint, at least one example kept
    per class), the same numpy operations in the same order (tested equal to cleanlab on random inputs).
    A port of cleanlab's code (Copyright Cleanlab Inc., Apache License 2.0,
    https://github.com/cleanlab/cleanlab: ``filter.find_label_issues``, ``count.compute_confident_joint``,
    ``internal.util.round_preserving_row_totals``), so that the audit need not import cleanlab.

    ``labels``: integer classes 0..K-1 (K = ``pred_probs.shape[1]``); ``pred_probs``: out-of-sample
    class probabilities, rows summing to 1.
    """
    labels = np.asarray(labels)
    pred_probs = np.asarray(pred_probs)
    n, k_classes = pred_probs.shape
    counts = np.bincount(labels, minlength=k_classes)
    present = counts > 0
    # confident joint cj[given, true guess]: a class is a confident guess when its probability reaches the
    # mean self-confidence of its class; with several, the argmax
    thr = np.array([np.mean(pred_probs[:, k][labels == k]) if present[k] else 2.0 for k in range(k_classes)])
    confident = pred_probs >= np.clip(thr, 2 * _FPC, None) - 1e-6
    n_conf = confident.sum(axis=1)
    guess = np.where(n_conf > 1, pred_probs.argmax(axis=1), confident.argmax(axis=1))
    sure = n_conf > 0
    cj = np.zeros((k_classes, k_classes), dtype=int)
    np.add.at(cj, (labels[sure], guess[sure]), 1)
    np.fill_diagonal(cj, cj.diagonal().clip(min=1))
    cal = (cj.T / np.clip(cj.sum(axis=1), 1e-100, None) * counts).T
    cj = _round_rows(cal / np.clip(np.sum(cal), 1e-100, None) * counts.sum())
    # prune counts (cleanlab's _keep_at_least_n_per_class with n = 1, frac_noise = 1)
    pcm = cj.T
    diag = np.diagonal(pcm)
    new_diag = np.maximum(diag, 1)
    per_col = np.maximum(np.count_nonzero(pcm, axis=0) - 1.0, 1.0)
    new = pcm - (new_diag - diag) / per_col
    new[new < 0] = 0
    np.fill_diagonal(new, new_diag)
    red = new * 1.0
    np.fill_diagonal(red, new.diagonal())
    np.fill_diagonal(red, new.diagonal() + np.sum(new - red, axis=0))
    pcm = _round_rows(red.astype(int)).astype(int)
    mask = np.zeros(n, dtype=bool)
    for k in range(k_classes):  # per given class k: the largest margins p(j) - p(k), as many as pcm[j, k]
        members = labels == k
        pp = pred_probs[members]
        m = np.zeros(pp.shape[0], dtype=bool)
        if pp.shape[0] > 1:
            for j in range(k_classes):
                if j != k and pcm[j, k] > 0:
                    m[np.argsort(-(pp[:, j] - pp[:, k]))[:pcm[j, k]]] = True
            mask[members] = m
    # keep pairs whose given label is (within 1e-6) the model's argmax
    bumped = pred_probs.copy()
    bumped[np.arange(n), labels] += _FPC
    mask[bumped.argmax(axis=1) == labels] = False
    return mask


def calibration_table(s: np.ndarray, beta: float, rho: float, bins: int = 10) -> pl.DataFrame:
    """Per bin of the model's confidence |s|: pairs, the share whose recorded label is the side the
    model favours (observed), and the flip model's rho + (1 - 2 rho) sigmoid(beta |s|) (fitted), whose
    ceiling is 1 - rho. What the plot shows."""
    from scipy.special import expit

    c = np.abs(s)
    edges = np.unique(np.quantile(c, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = []
    for b in range(max(len(edges) - 1, 1)):
        m = idx == b
        if m.any():
            rows.append((float(np.median(c[m])), int(m.sum()), float((s[m] > 0).mean()),
                         float(np.mean(rho + (1 - 2 * rho) * expit(beta * c[m])))))
    return pl.DataFrame(rows, schema={"confidence": pl.Float64, "n": pl.Int64, "observed_agreement": pl.Float64,
                                      "fitted_agreement": pl.Float64}, orient="row")


@register_plot("noise")
def plot_noise(result: AnalyzerResult) -> matplotlib.figure.Figure:
    """Left: histogram of noise_score (flagged pairs in red). Right (model mode): by model confidence,
    how often the recorded label is the side the model favours, observed and fitted; the fit's
    ceiling is 1 - the estimated noise rate."""
    fig = new_figure(8.0, 3.4)
    ax1, ax2 = fig.subplots(1, 2)
    pairs = result.pairs
    if pairs is not None and pairs.height:
        p = pairs.filter(pl.col("noise_score").is_not_null())
        bins = np.linspace(0, 1, 21)
        ax1.hist(p.filter(~pl.col("noise_flag"))["noise_score"].to_numpy(), bins=bins, color="#1f5fa8", label="kept")
        ax1.hist(p.filter(pl.col("noise_flag"))["noise_score"].to_numpy(), bins=bins, color="#c0392b", label="flagged")
        ax1.legend(fontsize=7)
    ax1.set_xlabel("noise_score (1 = looks clean)")
    ax1.set_ylabel("pairs")
    cal = result.details.get("calibration")
    rate = result.metrics.get("noise.estimated_rate")
    if isinstance(cal, pl.DataFrame) and cal.height:
        ax2.plot(cal["confidence"], cal["observed_agreement"], "o", color="#555", label="observed")
        ax2.plot(cal["confidence"], cal["fitted_agreement"], "-", color="#1f5fa8", label="flip model")
        if rate is not None and rate.value is not None:
            ax2.axhline(1 - rate.value, color="#c0392b", linestyle="--", label="1 - estimated noise rate")
        ax2.set_xlabel("model confidence |out-of-fold logit|")
        ax2.set_ylabel("recorded label = model's side")
        ax2.set_ylim(0.4, 1)
        ax2.legend(fontsize=7)
    else:
        ax2.axis("off")
        if rate is not None:
            ax2.text(0.05, 0.5, f"estimated noise rate: {rate}", fontsize=8)
    return fig
