"""Coverage: prompt clusters, out-of-distribution target prompts and gap clusters.

Pure functions underneath (:func:`knn_cosine`, :func:`choose_k`, :func:`cluster_terms`,
:func:`ood_model`, :func:`gap_mask`) and :class:`CoverageAnalyzer` on top. Needs prompt embeddings
(``context.embedder``); without them the analyzer skips with that reason (``--no-embeddings``).

How it works:

- **Clusters.** Distinct training prompts — and, when a target set is given, distinct target prompts
  — are clustered *jointly* with k-means on their L2-normalised embeddings (``KMeans`` up to 20,000
  points, ``MiniBatchKMeans`` beyond, so it scales to millions). Each side gets equal total weight,
  so a topic that only the target holds forms clusters of its own instead of being absorbed into
  the nearest training cluster: that is how a withheld topic shows up as a gap. k is chosen from the
  data: the best silhouette on a (balanced) sample of at most 2,000 points (projected to 64 principal
  components) over a grid of k in [``k_min``, ``k_max``] = [4, 30]. Clusters are named by their most
  distinctive terms (class-based TF-IDF: term frequency within the cluster times log(1 + average
  cluster size in words / term frequency overall), terms over-represented in the cluster first).
  On real prompts the silhouette curve is often flat (hh-rlhf: 0.10-0.13 for every k), and k = 2 or
  3 lumps a withheld topic together with in-distribution prompts; ``k_min = 4`` comes from the
  benchmark below.
- **Out of distribution.** A target prompt's ``ood_score`` is its mean cosine distance (1 - cos) to
  its ``n_neighbors`` nearest distinct training prompts. It is ``ood_flag``-ged when that is above
  the ``ood_quantile`` (0.95) quantile of the same statistic for the training prompts themselves,
  each left out of its own neighbourhood — so about 5% of in-distribution prompts are flagged by
  construction. Above ``max_reference`` distinct training prompts, a random sample of that size is
  the reference for both (the calibration stays exact).
- **Gap clusters.** A cluster is a gap when its share of target prompts is at least ``gap_ratio``
  (R) times its share of training pairs, or when it holds fewer than ``gap_min_train`` (m) distinct
  training prompts and at least one target prompt. Defaults R = 2, m = 5 (and k_min = 4) come from
  ``benchmarks/bench_coverage.py`` (benchmarks/RESULTS.md, "Coverage (issue 4)"): on synthetic data
  with a withheld topic R >= 2 keeps false gaps under 1% while every R <= 3 finds >= 91% of the
  withheld prompts; m between 1 and 20 barely matters there, m = 5 guards against clusters too small
  to estimate a share from. Target prompts that are out of distribution but land in a
  well-covered cluster still count in ``coverage.target_ood_share``.
- **Per pair.** ``coverage_cluster`` always. With a target set, ``coverage_score`` is the share of
  target prompts at least as far from the rest of the target as this pair's prompt is from the target
  (an empirical p-value; low = the pair's prompt is off-target) and ``coverage_flag`` marks pairs
  below 1 - ``ood_quantile``. Without a target, a pair cannot be judged: score 1, flag False.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from prefaudit.analyzers.base import AnalyzerResult, AuditContext, Metric
from prefaudit.plots import new_figure, register_plot
from prefaudit.threads import limited_threads

if TYPE_CHECKING:
    import matplotlib.figure

    from prefaudit.data.preference_set import PreferenceSet

EXTRA_STOP_WORDS = ("human", "assistant", "user", "ai")


# ---- neighbours ------------------------------------------------------------------------------------------
def knn_cosine(query: np.ndarray, base: np.ndarray, k: int, *, exclude_self: bool = False,
               block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar rows of ``base`` for each row of ``query`` (rows L2-normalised).

    Returns (similarities, indices), each (len(query), k), most similar first. Blocked brute force:
    memory is ``block x len(base)``. With ``exclude_self`` (query is base), row i never returns i.
    """
    q = np.ascontiguousarray(query, dtype=np.float32)
    b = np.ascontiguousarray(base, dtype=np.float32)
    k = int(min(k, b.shape[0] - (1 if exclude_self else 0)))
    if k <= 0 or q.shape[0] == 0:
        return np.zeros((q.shape[0], 0), np.float32), np.zeros((q.shape[0], 0), np.int64)
    sims = np.empty((q.shape[0], k), np.float32)
    idx = np.empty((q.shape[0], k), np.int64)
    for s in range(0, q.shape[0], block):
        sim = q[s:s + block] @ b.T
        if exclude_self:
            r = np.arange(sim.shape[0])
            sim[r, s + r] = -np.inf
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        ps = np.take_along_axis(sim, part, axis=1)
        order = np.argsort(-ps, axis=1)
        idx[s:s + block] = np.take_along_axis(part, order, axis=1)
        sims[s:s + block] = np.take_along_axis(ps, order, axis=1)
    return sims, idx


def knn_distance(query: np.ndarray, base: np.ndarray, k: int, *, exclude_self: bool = False) -> np.ndarray:
    """Mean cosine distance (1 - cos) from each query row to its ``k`` nearest rows of ``base``."""
    sims, _ = knn_cosine(query, base, k, exclude_self=exclude_self)
    if sims.shape[1] == 0:
        return np.full(query.shape[0], np.nan)
    return (1.0 - sims.astype(np.float64)).mean(axis=1)


def quantile_interval(x: np.ndarray, q: float, level: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free CI of the q-quantile from order statistics (binomial ranks)."""
    from scipy import stats

    x = np.sort(np.asarray(x, dtype=float))
    n = x.size
    if n < 2:
        return None
    a = (1 - level) / 2
    lo = int(max(0, stats.binom.ppf(a, n, q) - 1))
    hi = int(min(n - 1, stats.binom.ppf(1 - a, n, q)))
    return float(x[lo]), float(x[hi])


@dataclass(frozen=True)
class OODModel:
    """The reference prompts and calibration of the out-of-distribution test."""

    reference: np.ndarray  # embeddings of the reference (training) prompts
    loo: np.ndarray  # leave-one-out k-NN distances of (a sample of) the reference prompts
    threshold: float
    k: int

    def score(self, x: np.ndarray) -> np.ndarray:
        return knn_distance(x, self.reference, self.k)

    def p_value(self, d: np.ndarray) -> np.ndarray:
        """Share of reference leave-one-out distances >= d (1 = typical, near 0 = far away)."""
        s = np.sort(self.loo)
        return (s.size - np.searchsorted(s, d, side="left")) / max(s.size, 1)


def ood_model(reference: np.ndarray, *, k: int = 5, quantile: float = 0.95, max_reference: int = 20_000,
              n_loo: int = 5_000, seed: int = 0) -> OODModel:
    """Calibrate the k-NN distance test on ``reference`` (rows = distinct prompts, L2-normalised)."""
    rng = np.random.default_rng(seed)
    ref = reference
    if ref.shape[0] > max_reference:
        ref = ref[np.sort(rng.choice(ref.shape[0], max_reference, replace=False))]
    loo_idx = np.arange(ref.shape[0])
    if loo_idx.size > n_loo:
        loo_idx = np.sort(rng.choice(loo_idx, n_loo, replace=False))
    sims, idx = knn_cosine(ref[loo_idx], ref, k + 1)
    keep = idx != loo_idx[:, None]  # drop each point itself
    d = np.array([(1.0 - s[m][:k].astype(np.float64)).mean() for s, m in zip(sims, keep, strict=True)]) \
        if loo_idx.size else np.zeros(0)
    thr = float(np.quantile(d, quantile)) if d.size else float("nan")
    return OODModel(reference=ref, loo=d, threshold=thr, k=min(k, max(ref.shape[0] - 1, 1)))


# ---- clustering -------------------------------------------------------------------------------------------
def _kmeans(k: int, n: int, seed: int, n_init: int = 3) -> Any:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if n <= 20_000:
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    return MiniBatchKMeans(n_clusters=k, n_init=n_init, random_state=seed, batch_size=4096)


def k_grid(k_min: int, k_max: int, n_points: int = 14) -> list[int]:
    """Candidate numbers of clusters: every k up to 10, then a geometric grid up to ``k_max``."""
    ks = set(range(k_min, min(k_max, 10) + 1))
    if k_max > 10:
        ks |= {int(round(v)) for v in np.geomspace(10, k_max, max(2, n_points - len(ks)))}
    return sorted(k for k in ks if k_min <= k <= k_max)


def choose_k(x: np.ndarray, *, k_min: int = 2, k_max: int = 30, sample: int = 2000,
             weights: np.ndarray | None = None, seed: int = 0, dims: int = 64,
             threads: int | None = 1) -> tuple[int, pl.DataFrame]:
    """The k in [k_min, k_max] with the best silhouette (cosine) on a sample drawn ∝ ``weights``.

    For speed the search runs on the sample projected to its first ``dims`` principal components
    (three k-means starts per k); the final clustering uses the full vectors. ``threads``: see
    :func:`prefaudit.threads.limited_threads`. Returns (k, table of k and silhouette).
    """
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    n = x.shape[0]
    p = None if weights is None else weights / weights.sum()
    s = x if n <= sample and weights is None else x[rng.choice(n, min(sample, n), replace=weights is not None,
                                                               p=p)]
    if s.shape[1] > dims and s.shape[0] > dims:
        s = _Projection(s, dims)(s)
    k_max = int(min(k_max, max(k_min, np.unique(s, axis=0).shape[0] - 1)))
    unit = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
    dist = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)  # cosine distances, computed once
    np.fill_diagonal(dist, 0.0)
    rows = []
    with limited_threads(threads, preload_sklearn=True):
        for k in k_grid(k_min, k_max):
            labels = _kmeans(k, s.shape[0], seed, n_init=3).fit_predict(s)
            if np.unique(labels).size < 2:
                continue
            rows.append((k, float(silhouette_score(dist, labels, metric="precomputed"))))
    table = pl.DataFrame(rows, schema={"k": pl.Int64, "silhouette": pl.Float64}, orient="row")
    if not rows:
        return 1, table
    best = max(rows, key=lambda r: (r[1], -r[0]))
    return best[0], table


def cluster_terms(texts: list[str], labels: np.ndarray, n_clusters: int, *, n_terms: int = 5,
                  max_docs: int = 50_000, min_lift: float = 1.5, seed: int = 0) -> list[list[str]]:
    """Class-based TF-IDF: the ``n_terms`` most distinctive words of each cluster (empty list if none).

    Terms are ranked by c-TF-IDF (BERTopic's: frequency in the cluster x log(1 + average words per
    cluster / frequency overall)); terms at least ``min_lift`` times more frequent in the cluster than
    overall come first. At most ``max_docs`` texts (a random sample) are read.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    labels = np.asarray(labels)
    if len(texts) > max_docs:
        pick = np.random.default_rng(seed).choice(len(texts), max_docs, replace=False)
        texts, labels = [texts[i] for i in pick], labels[pick]
    cv = CountVectorizer(stop_words=sorted(ENGLISH_STOP_WORDS | set(EXTRA_STOP_WORDS)),
                         token_pattern=r"(?u)\b[^\W\d_]{2,}\b", max_features=50_000, lowercase=True)
    try:
        x = cv.fit_transform(texts)
    except ValueError:  # no terms at all
        return [[] for _ in range(n_clusters)]
    from scipy import sparse

    onehot = sparse.csr_matrix((np.ones(labels.size), (labels, np.arange(labels.size))),
                               shape=(n_clusters, labels.size))
    m = np.asarray((onehot @ x).todense(), dtype=np.float64)
    words_per_class = m.sum(axis=1, keepdims=True)
    tf = m / np.maximum(words_per_class, 1)
    avg = m.sum() / max(n_clusters, 1)
    idf = np.log1p(avg / np.maximum(m.sum(axis=0), 1))
    score = tf * idf
    # words that are frequent everywhere ("want", "think") name nothing: prefer terms over-represented
    # in the cluster (relative frequency at least ``min_lift`` times the overall one)
    lift = tf / np.maximum(m.sum(axis=0) / max(m.sum(), 1), 1e-12)
    vocab = np.asarray(cv.get_feature_names_out())
    out = []
    for c in range(n_clusters):
        ranked = np.argsort(-score[c])
        picked = [t for t in ranked if m[c, t] > 0 and lift[c, t] >= min_lift][:n_terms]
        picked += [t for t in ranked if m[c, t] > 0 and t not in picked][: n_terms - len(picked)]
        out.append([str(vocab[t]) for t in picked])
    return out


def gap_mask(n_train_pairs: np.ndarray, n_train_prompts: np.ndarray, n_target: np.ndarray, *,
             ratio: float = 2.0, min_train: int = 5) -> np.ndarray:
    """Gap clusters: target share >= ratio x training share, or < min_train training prompts while
    holding target prompts."""
    n_train_pairs = np.asarray(n_train_pairs, dtype=float)
    n_target = np.asarray(n_target, dtype=float)
    train_share = n_train_pairs / max(n_train_pairs.sum(), 1)
    target_share = n_target / max(n_target.sum(), 1)
    by_ratio = (n_target > 0) & (target_share >= ratio * train_share)
    by_count = (n_target > 0) & (np.asarray(n_train_prompts) < min_train)
    return by_ratio | by_count


class _Projection:
    """Principal-component projection fitted on ``points`` (eigenvectors of the covariance)."""

    def __init__(self, points: np.ndarray, dims: int) -> None:
        x = np.asarray(points, np.float64)
        self.mean = x.mean(axis=0)
        c = x - self.mean
        vals, vecs = np.linalg.eigh(c.T @ c)
        self.components = vecs[:, np.argsort(-vals)[: min(dims, x.shape[1])]]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.mean) @ self.components


# ---- inputs -----------------------------------------------------------------------------------------------
def target_prompts(target: Any) -> pl.Series | None:
    """The prompts of a target set given as a PreferenceSet, a frame with ``prompt``, or a list."""
    if target is None:
        return None
    if isinstance(target, pl.DataFrame):
        return target["prompt"].cast(pl.Utf8).fill_null("")
    if hasattr(target, "df"):
        return target.df["prompt"].cast(pl.Utf8).fill_null("")
    return pl.Series("prompt", list(target), dtype=pl.Utf8).fill_null("")


def _unique(texts: pl.Series) -> tuple[list[str], np.ndarray]:
    """Distinct texts (first-seen order) and, per input row, the index of its distinct text."""
    d = pl.DataFrame({"t": texts}).with_row_index("row")
    first = d.unique("t", keep="first", maintain_order=True).with_row_index("u")
    inv = d.join(first.select("t", "u"), on="t", how="left", maintain_order="left")["u"].to_numpy()
    return first["t"].to_list(), inv.astype(np.int64)


# ---- the analyzer -----------------------------------------------------------------------------------------
class CoverageAnalyzer:
    """Prompt clusters named by their terms; with a target set, OOD target prompts and gap clusters.

    Parameters (see the module docstring): ``k`` (fixed number of clusters; None = chosen by
    silhouette in [``k_min``, ``k_max``]), ``n_neighbors`` (k of the k-NN distance), ``ood_quantile``,
    ``gap_ratio`` (R), ``gap_min_train`` (m), ``max_reference``, ``silhouette_sample``, ``n_terms``
    (words naming a cluster), ``n_examples`` (example target prompts per gap cluster), ``map_points``
    (points in the 2-D map), ``threads`` (BLAS/OpenMP threads for the clustering and neighbour search;
    1 by default because scikit-learn's k-means slows down by orders of magnitude when several
    processes oversubscribe the cores, as in a parallel test run; None = the libraries' default).
    """

    name = "coverage"

    def __init__(self, *, k: int | None = None, k_min: int = 4, k_max: int = 30, n_neighbors: int = 5,
                 ood_quantile: float = 0.95, gap_ratio: float = 2.0, gap_min_train: int = 5,
                 max_reference: int = 20_000, silhouette_sample: int = 2000, n_terms: int = 5,
                 n_examples: int = 3, map_points: int = 1500, threads: int | None = 1) -> None:
        self.k = k
        self.k_min = k_min
        self.k_max = k_max
        self.n_neighbors = n_neighbors
        self.ood_quantile = ood_quantile
        self.gap_ratio = gap_ratio
        self.gap_min_train = gap_min_train
        self.max_reference = max_reference
        self.silhouette_sample = silhouette_sample
        self.n_terms = n_terms
        self.n_examples = n_examples
        self.map_points = map_points
        self.threads = threads

    def config(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (
            "k", "k_min", "k_max", "n_neighbors", "ood_quantile", "gap_ratio", "gap_min_train",
            "max_reference", "silhouette_sample", "n_terms", "n_examples", "map_points", "threads")}

    # -- steps --
    def _cluster(self, x: np.ndarray, w: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
        if self.k is not None:
            k, sil = int(self.k), pl.DataFrame(schema={"k": pl.Int64, "silhouette": pl.Float64})
        elif x.shape[0] < 4:
            k, sil = 1, pl.DataFrame(schema={"k": pl.Int64, "silhouette": pl.Float64})
        else:
            k, sil = choose_k(x, k_min=self.k_min, k_max=self.k_max, sample=self.silhouette_sample,
                              weights=w, seed=seed)
        k = max(1, min(k, x.shape[0]))
        km = _kmeans(k, x.shape[0], seed).fit(x, sample_weight=w)
        return km.labels_.astype(np.int64), km.cluster_centers_, sil

    def run(self, data: PreferenceSet, context: AuditContext | None = None) -> AnalyzerResult:
        ctx = context or AuditContext()
        cfg = self.config()
        if ctx.embedder is None:
            return AnalyzerResult.skip(self.name, "needs prompt embeddings (embeddings are off: "
                                                  "--no-embeddings)", cfg)
        df = data.df if hasattr(data, "df") else data
        if df.height == 0:
            return AnalyzerResult.skip(self.name, "no pairs", cfg)
        tr_texts, tr_inv = _unique(df["prompt"].cast(pl.Utf8).fill_null(""))
        x_tr = np.asarray(ctx.embedder.encode(tr_texts), dtype=np.float32)
        tp = target_prompts(ctx.target)
        tg_texts, tg_inv = _unique(tp) if tp is not None else ([], np.zeros(0, np.int64))
        x_tg = np.asarray(ctx.embedder.encode(tg_texts), dtype=np.float32) if tg_texts else \
            np.zeros((0, x_tr.shape[1]), np.float32)
        with limited_threads(self.threads, preload_sklearn=True):
            return self._run(df, ctx, cfg, tr_texts, tr_inv, x_tr, tp, tg_texts, tg_inv, x_tg)

    def _run(self, df: pl.DataFrame, ctx: AuditContext, cfg: dict[str, Any], tr_texts: list[str],
             tr_inv: np.ndarray, x_tr: np.ndarray, tp: pl.Series | None, tg_texts: list[str],
             tg_inv: np.ndarray, x_tg: np.ndarray) -> AnalyzerResult:
        seed = ctx.seed
        tr_pairs = np.bincount(tr_inv, minlength=len(tr_texts)).astype(float)
        has_target = tp is not None and tp.len() > 0
        tg_rows = np.bincount(tg_inv, minlength=len(tg_texts)).astype(float)
        # joint clustering, each side with equal total weight
        x = np.vstack([x_tr, x_tg])
        n_all = x.shape[0]
        w_tr = tr_pairs / tr_pairs.sum() * (n_all / (2 if has_target else 1))
        w = np.r_[w_tr, tg_rows / tg_rows.sum() * n_all / 2] if has_target else w_tr
        labels, centers, sil = self._cluster(x, w, seed)
        k = centers.shape[0]
        lab_tr, lab_tg = labels[: len(tr_texts)], labels[len(tr_texts):]
        terms = cluster_terms(tr_texts + tg_texts, labels, k, n_terms=self.n_terms, seed=seed)
        n_train_pairs = np.bincount(lab_tr, weights=tr_pairs, minlength=k)
        n_train_prompts = np.bincount(lab_tr, minlength=k)
        n_target = np.bincount(lab_tg, weights=tg_rows, minlength=k) if has_target else np.zeros(k)
        gap = gap_mask(n_train_pairs, n_train_prompts, n_target, ratio=self.gap_ratio,
                       min_train=self.gap_min_train) if has_target else np.zeros(k, bool)

        metrics: dict[str, Metric] = {"coverage.n_clusters": Metric.count(k)}
        if sil.height:
            best = sil.filter(pl.col("k") == k)
            metrics["coverage.silhouette"] = Metric(float(best["silhouette"][0]) if best.height else None,
                                                    None, int(min(self.silhouette_sample, n_all)),
                                                    "silhouette (cosine) of the chosen k on a sample")
        pairs = pl.DataFrame({"pair_id": df["pair_id"].cast(pl.Utf8), "coverage_cluster": lab_tr[tr_inv]})
        details: dict[str, Any] = {"silhouette": sil}
        ood_tg = np.zeros(len(tg_texts))
        min_ref = self.n_neighbors + 2
        if has_target:
            t_rows = tp.len()
            in_gap = gap[lab_tg][tg_inv]
            metrics["coverage.target_gap_share"] = Metric.proportion(
                int(in_gap.sum()), t_rows, f"gap: target share >= {self.gap_ratio:g} x training share, or "
                f"< {self.gap_min_train} training prompts")
            metrics["coverage.n_gap_clusters"] = Metric.count(int(gap.sum()))
            if len(tr_texts) >= min_ref:
                model = ood_model(x_tr, k=self.n_neighbors, quantile=self.ood_quantile,
                                  max_reference=self.max_reference, seed=seed)
                ood_tg = model.score(x_tg)
                flag_tg = ood_tg > model.threshold
                metrics["coverage.target_ood_share"] = Metric.proportion(
                    int(flag_tg[tg_inv].sum()), t_rows,
                    f"k-NN distance above the training prompts' own {self.ood_quantile:g} quantile")
                metrics["coverage.ood_threshold"] = Metric(
                    model.threshold, quantile_interval(model.loo, self.ood_quantile), model.loo.size,
                    f"{self.ood_quantile:g} quantile of leave-one-out {model.k}-NN cosine distances",
                    "order statistics")
            else:
                flag_tg = np.zeros(len(tg_texts), bool)
                ood_tg = np.full(len(tg_texts), np.nan)
                metrics["coverage.target_ood_share"] = Metric.undefined(
                    f"fewer than {min_ref} distinct training prompts: no k-NN reference", t_rows)
            details["target"] = pl.DataFrame({
                "prompt": tp, "ood_score": ood_tg[tg_inv], "ood_flag": flag_tg[tg_inv],
                "cluster": lab_tg[tg_inv]})
            if len(tg_texts) >= min_ref:  # training pairs far from every target prompt (off-target)
                tg_model = ood_model(x_tg, k=self.n_neighbors, quantile=self.ood_quantile,
                                     max_reference=self.max_reference, seed=seed)
                d_tr = tg_model.score(x_tr)
                pairs = pairs.with_columns(
                    pl.Series("coverage_score", tg_model.p_value(d_tr)[tr_inv]),
                    pl.Series("coverage_flag", (d_tr > tg_model.threshold)[tr_inv]),
                    pl.Series("coverage_target_distance", d_tr[tr_inv]))
                metrics["coverage.train_off_target_share"] = Metric.proportion(
                    int(pairs["coverage_flag"].sum()), pairs.height,
                    "training pairs whose prompt is farther from the target prompts than "
                    f"{self.ood_quantile:g} of the target prompts are from each other")
            else:
                pairs = pairs.with_columns(pl.lit(1.0).alias("coverage_score"),
                                           pl.lit(False).alias("coverage_flag"))
                metrics["coverage.train_off_target_share"] = Metric.undefined(
                    f"fewer than {min_ref} distinct target prompts", pairs.height)
        else:
            note = "no target prompts given (--target)"
            for name in ("coverage.target_gap_share", "coverage.target_ood_share"):
                metrics[name] = Metric.undefined(note)
            pairs = pairs.with_columns(pl.lit(1.0).alias("coverage_score"), pl.lit(False).alias("coverage_flag"))
        pairs = pairs.select("pair_id", "coverage_score", "coverage_flag", pl.exclude(
            "pair_id", "coverage_score", "coverage_flag"))

        clusters = pl.DataFrame({
            "cluster": np.arange(k), "name": [", ".join(t) for t in terms],
            "n_train": n_train_pairs.astype(np.int64), "n_train_prompts": n_train_prompts.astype(np.int64),
            "share_train": n_train_pairs / max(n_train_pairs.sum(), 1),
            "n_target": n_target.astype(np.int64), "share_target": n_target / max(n_target.sum(), 1),
            "gap": gap})
        clusters = clusters.with_columns(
            (pl.col("share_target") / pl.col("share_train")).alias("ratio"),
            pl.Series("examples", self._examples(tg_texts, lab_tg, ood_tg, k)))
        details["clusters"] = clusters
        if has_target:
            details["gaps"] = clusters.filter(pl.col("gap")).sort("n_target", descending=True)
        details["map"], details["points"] = self._map(x, labels, centers, clusters, len(tr_texts), seed)
        return AnalyzerResult(name=self.name, metrics=metrics, pairs=pairs, details=details, config=cfg)

    def _examples(self, texts: list[str], labels: np.ndarray, ood: np.ndarray, k: int) -> list[list[str]]:
        """Per cluster, up to ``n_examples`` target prompts (the farthest from training first)."""
        out: list[list[str]] = [[] for _ in range(k)]
        for i in np.argsort(-np.nan_to_num(ood, nan=0.0), kind="stable"):
            c = int(labels[i])
            if len(out[c]) < self.n_examples:
                out[c].append(texts[i][:300])
        return out

    def _map(self, x: np.ndarray, labels: np.ndarray, centers: np.ndarray, clusters: pl.DataFrame,
             n_train: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        """2-D PCA map: clusters (centroids, sizes) and a sample of points with their set and cluster."""
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(x.shape[0], min(self.map_points, x.shape[0]), replace=False))
        if x.shape[0] < 2:
            xy_c, xy_p = np.zeros((centers.shape[0], 2)), np.zeros((pick.size, 2))
        else:
            proj = _Projection(x[pick], 2)
            xy_c, xy_p = proj(centers), proj(x[pick])
            if xy_c.shape[1] < 2:
                xy_c = np.c_[xy_c, np.zeros(len(xy_c))]
                xy_p = np.c_[xy_p, np.zeros(len(xy_p))]
        cmap = clusters.select("cluster", "name", "n_train", "n_target", "gap").with_columns(
            pl.Series("x", xy_c[:, 0]), pl.Series("y", xy_c[:, 1]))
        pts = pl.DataFrame({"x": xy_p[:, 0], "y": xy_p[:, 1],
                            "set": np.where(pick < n_train, "train", "target"), "cluster": labels[pick]})
        return cmap, pts


@register_plot("coverage")
def plot_coverage(result: AnalyzerResult) -> matplotlib.figure.Figure:
    """2-D map: sampled training (grey) and target (blue) prompts, cluster centres sized by training
    share, gap clusters outlined in red and labelled with their terms."""
    fig = new_figure(6.4, 4.6)
    ax = fig.add_subplot()
    pts = result.details.get("points")
    cmap = result.details.get("map")
    if isinstance(pts, pl.DataFrame) and pts.height:
        for s, color in (("train", "#bbbbbb"), ("target", "#1f5fa8")):
            p = pts.filter(pl.col("set") == s)
            if p.height:
                ax.scatter(p["x"], p["y"], s=6, alpha=0.5, color=color, label=f"{s} prompts")
    if isinstance(cmap, pl.DataFrame) and cmap.height:
        total = max(int(cmap["n_train"].sum()), 1)
        for r in cmap.iter_rows(named=True):
            size = 30 + 600 * r["n_train"] / total
            ax.scatter([r["x"]], [r["y"]], s=size, facecolor="none",
                       edgecolor="#c0504d" if r["gap"] else "#333333", linewidth=2 if r["gap"] else 1)
            if r["gap"]:
                ax.annotate(str(r["name"])[:40], (r["x"], r["y"]), fontsize=7, color="#c0504d")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("prompt clusters (PCA of embeddings); red = gap")
    if isinstance(pts, pl.DataFrame) and pts.height:
        ax.legend(loc="best", fontsize=7)
    return fig
