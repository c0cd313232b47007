"""The cross-fitted, swap-symmetric preference model behind label-noise estimation without annotations.

Pure functions (usable alone):

- :func:`difference_features` — per pair, features of the chosen response minus the same features of
  the rejected one: TF-IDF of the response text (word 1-2-grams, sublinear tf), prompt–response
  relevance (TF-IDF cosine; with an embedder also the embedding cosine), surface features
  (:mod:`prefaudit.analyzers.surface`, log1p counts) and, with an embedder, the response embedding.
  A difference changes sign when the two responses swap, so a linear model without intercept on it
  gives P(b over a) = 1 - P(a over b) by construction.
- :class:`HashedTfidf` — the TF-IDF (sklearn's ``TfidfVectorizer`` statistics, tested against it)
  computed with polars tokenising and numpy sorts instead of a Python loop per document.
- :func:`crossfit_scores` — out-of-fold logits s of "the recorded chosen response is better": a
  logistic regression without intercept, trained on both orientations of every training pair
  ((d, 1) and (-d, 0); :func:`fit_symmetric_logistic` reaches that optimum on the rows once), K folds
  grouped by prompt (a prompt's pairs share a fold);
  :func:`repeated_crossfit` averages them over several fold splits (on the synthetic data one split
  moves the estimated rate by +-0.02).
- :func:`fit_flip_calibration` — the symmetric label-flip model on those logits,
  P(recorded label | s) = rho + (1 - 2 rho) sigmoid(beta s), fitted by maximum likelihood: rho is the
  estimated share of recorded labels that are wrong (the floor the agreement curve does not rise
  above, however confident the model), beta recalibrates the logits.
- :func:`flip_posterior` — per pair, P(the recorded preference is wrong | s) under that fit.
- :func:`select_c` runs the cross-fit for a grid of L2 strengths and keeps the one whose calibrated
  out-of-fold likelihood is best (optional: :data:`DEFAULT_C` is what that selection picked on the
  synthetic data and what did best on hh-rlhf).

The defaults (feature weights, C grid) come from ``benchmarks/bench_noise.py`` on hh-rlhf and the
synthetic generator; see benchmarks/RESULTS.md, "Label noise (issue 3)".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit

from prefaudit.threads import one_thread

if TYPE_CHECKING:
    from prefaudit.embed import Embedder

C_GRID: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0)
DEFAULT_C = 0.1
RELEVANCE_WEIGHT = 3.0  # a single column competes with thousands of TF-IDF ones
SURFACE_WEIGHT = 0.3


@dataclass
class Features:
    """Difference features of n pairs (chosen minus rejected), the names of the blocks used, and what
    was fitted on these pairs (TF-IDF vocabulary, surface-feature scale) for featurising others alike."""

    x: sp.csr_matrix
    blocks: list[str] = field(default_factory=list)
    vectorizer: HashedTfidf | None = None
    surface_rms: np.ndarray | None = None


#: sklearn's default token pattern: runs of two or more word characters (case-folded first).
TOKEN_PATTERN = r"\b\w\w+\b"
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0x632BE59BD9B4E019))


def term_hashes(texts: Sequence[str] | pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(row, 64-bit hash) of every unigram and bigram occurrence in each text (lower-cased, tokens of
    :data:`TOKEN_PATTERN`, as sklearn's vectorizers).

    Tokenising and hashing run in polars (Rust); bigram hashes mix the two unigram hashes in numpy,
    so no bigram string is ever built. A term is its 64-bit hash (two distinct terms of a corpus
    share one with probability ~ n^2 / 2^65: none in practice).
    """
    words = pl.Series("t", texts, dtype=pl.Utf8).fill_null("").str.to_lowercase().str.extract_all(TOKEN_PATTERN)
    row = np.repeat(np.arange(len(words), dtype=np.int64), words.list.len().to_numpy())
    h = words.list.eval(pl.element().hash(seed=0)).explode().drop_nulls().to_numpy()  # hashes, not strings, explode
    nxt = np.flatnonzero(row[1:] == row[:-1])  # word i and word i + 1 of the same text
    with np.errstate(over="ignore"):
        bi = (h[nxt] * _MIX[0]) ^ (h[nxt + 1] + _MIX[1])
        bi ^= bi >> np.uint64(31)
    return np.concatenate([row, row[nxt]]), np.concatenate([h, bi])


def term_entries(row: np.ndarray, h: np.ndarray, n_rows: int, vocabulary: np.ndarray | None = None,
                 _shift: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (term, row) occurrences of :func:`term_hashes` output, in (term, row) order (CSC order).

    Returns (terms: sorted hashes, col: index into terms, row, count). Without ``vocabulary`` the terms
    are every term of ``h``; with it (sorted hashes), the vocabulary, and occurrences of other terms are
    dropped. Counted by one sort of 64-bit keys ``hash prefix | row`` (a value sort: ~5x cheaper than the
    argsort of np.unique's inverse); exact whenever the prefixes of the terms involved are distinct (checked;
    otherwise, ~never, an argsort path does it).
    """
    shift = max(1, int(n_rows - 1).bit_length()) if _shift is None else _shift
    if h.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return (np.zeros(0, np.uint64) if vocabulary is None else vocabulary), empty, empty, empty
    present = _sorted_unique(h)
    terms = present if vocabulary is None else vocabulary
    both = present if vocabulary is None else _sorted_unique(np.concatenate([present, vocabulary]))
    sh = np.uint64(shift)
    if shift < 64 and not np.any(np.diff(both >> sh) == 0):
        key = h >> sh
        key <<= sh
        key |= row.astype(np.uint64)
        key.sort()
        first = np.flatnonzero(_changes(key))
        count = np.diff(first, append=key.size)
        key = key[first]
        r = (key & ((np.uint64(1) << sh) - np.uint64(1))).astype(np.int64)
        prefix = key >> sh
        if vocabulary is None:
            col = np.cumsum(_changes(prefix)) - 1
            return terms, col, r, count
        tp = terms >> sh
        col = np.minimum(np.searchsorted(tp, prefix), max(tp.size - 1, 0))
        known = tp[col] == prefix if tp.size else np.zeros(prefix.size, dtype=bool)
        return terms, col[known], r[known], count[known]
    # prefixes collide: unique (term, row) pairs by an argsort
    col = np.searchsorted(terms, h)
    known = (col < terms.size) & (terms[np.minimum(col, max(terms.size - 1, 0))] == h) if terms.size else \
        np.zeros(h.size, dtype=bool)
    col, r = col[known], row[known].astype(np.int64)
    pair, count = np.unique(col * np.int64(n_rows) + r, return_counts=True)
    return terms, pair // n_rows, pair % n_rows, count


def _changes(a: np.ndarray) -> np.ndarray:
    """Boolean mask: True where a (sorted, non-empty) value differs from the previous one, and at 0."""
    out = np.empty(a.size, dtype=bool)
    out[0] = True
    np.not_equal(a[1:], a[:-1], out=out[1:])
    return out


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique by a value sort (numpy 2's hash-based np.unique is ~10x slower on 10M 64-bit keys)."""
    a = np.sort(a)
    return a[_changes(a)] if a.size else a


def term_counts(texts: Sequence[str] | pl.Series, vocabulary: np.ndarray | None = None
                ) -> tuple[sp.csr_matrix, np.ndarray]:
    """(counts per text and term, the terms as sorted hashes): over every term of ``texts``, or, with
    ``vocabulary`` (sorted term hashes), over those terms only, in that order."""
    terms, col, r, count = term_entries(*term_hashes(texts), len(texts), vocabulary)
    return _csr(count, r, col, len(texts), terms.size), terms


def _csr(count: np.ndarray, row: np.ndarray, col: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """CSR matrix of counts from entries sorted by (col, row) without duplicates."""
    indptr = np.r_[0, np.cumsum(np.bincount(col, minlength=n_cols))]
    x = sp.csc_matrix((count.astype(np.float64), row.astype(np.int32), indptr), shape=(n_rows, n_cols))
    return x.tocsr()


@dataclass
class HashedTfidf:
    """TF-IDF over word 1-2-grams fitted on a corpus: the vocabulary (sorted term hashes) and its idf.

    The same as sklearn's ``TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
    max_features=...)`` (smooth idf, l2-normalised rows; tested against it), with each term identified
    by a 64-bit hash and counted by vectorised sorts instead of a Python loop over documents (10x
    faster on 100k texts); columns are in hash order, not alphabetical.
    """

    vocabulary: np.ndarray
    idf: np.ndarray

    @property
    def size(self) -> int:
        return int(self.vocabulary.size)

    @classmethod
    def fit(cls, texts: Sequence[str] | pl.Series, max_features: int, min_df: int = 2) -> HashedTfidf:
        return cls.fit_entries(*term_entries(*term_hashes(texts), len(texts)), len(texts), max_features, min_df)[0]

    @classmethod
    def fit_entries(cls, terms: np.ndarray, col: np.ndarray, row: np.ndarray, count: np.ndarray, n_rows: int,
                    max_features: int, min_df: int = 2, fit_rows: int | None = None
                    ) -> tuple[HashedTfidf, sp.csr_matrix]:
        """Fit on the :func:`term_entries` of a corpus (rows ``0 .. fit_rows - 1`` of ``n_rows``; the rest
        are only transformed); returns the vectorizer and the TF-IDF rows of all ``n_rows``. Keeps the
        ``max_features`` most frequent terms of those in at least ``min_df`` texts (every term when none
        is; ties by hash)."""
        n_fit = n_rows if fit_rows is None else fit_rows
        sel = row < n_fit
        # entries come sorted by col: per-term sums are sums over runs (sequential, no scatter)
        n_per = np.bincount(col, minlength=terms.size) if col.size else np.zeros(terms.size, dtype=np.int64)
        starts = np.cumsum(n_per) - n_per
        has = n_per > 0
        df = np.zeros(terms.size, dtype=np.int64)
        total = np.zeros(terms.size)
        if col.size:
            df[has] = np.add.reduceat(sel, starts[has], dtype=np.int64)
            total[has] = np.add.reduceat(np.where(sel, count, 0), starts[has], dtype=np.float64)
        keep = np.flatnonzero(df >= min_df)
        if keep.size == 0:
            keep = np.flatnonzero(df > 0)
        keep = np.sort(keep[np.argsort(-total[keep], kind="stable")[:max_features]])
        vec = cls(terms[keep], np.log((1 + n_fit) / (1 + df[keep])) + 1)
        kept = np.zeros(terms.size, dtype=bool)
        kept[keep] = True
        kept = np.repeat(kept, n_per)
        indptr = np.r_[0, np.cumsum(n_per[keep])]
        x = sp.csc_matrix((count[kept].astype(np.float64), row[kept].astype(np.int32), indptr),
                          shape=(n_rows, keep.size))
        return vec, vec.weigh(x.tocsr())

    def transform(self, texts: Sequence[str] | pl.Series) -> sp.csr_matrix:
        """l2-normalised rows of (1 + log tf) * idf over the vocabulary (float32 CSR)."""
        return self.weigh(term_counts(texts, self.vocabulary)[0])

    def weigh(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """TF-IDF rows from counts over the vocabulary's columns."""
        x = counts.astype(np.float64, copy=True)
        x.data = (1 + np.log(x.data)) * self.idf[x.indices]
        norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        x = sp.diags(1 / np.where(norm > 0, norm, 1)) @ x
        return x.astype(np.float32).tocsr()


def _rowdot(a: sp.csr_matrix | np.ndarray, b: sp.csr_matrix | np.ndarray) -> np.ndarray:
    if sp.issparse(a):
        return np.asarray(a.multiply(b).sum(axis=1)).ravel()
    return np.einsum("ij,ij->i", a, b)


def difference_features(prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str], *,
                        embedder: Embedder | None = None, max_features: int = 200_000,
                        like: Features | None = None) -> Features:
    """Chosen-minus-rejected features of each pair (module docstring: which and why).

    ``like``: the features of other pairs whose TF-IDF vocabulary and surface-feature scale to reuse, so
    that a model fitted on those pairs can score these (e.g. pairs outside a fitted sample).
    """
    from prefaudit.analyzers.surface import feature_exprs

    n = len(chosen)
    texts = pl.concat([pl.Series(chosen, dtype=pl.Utf8), pl.Series(rejected, dtype=pl.Utf8),
                       pl.Series(prompts, dtype=pl.Utf8)])
    row, h = term_hashes(texts)  # one pass over the responses (vocabulary) and prompts (relevance)
    if like is None or like.vectorizer is None:
        vec, all_ = HashedTfidf.fit_entries(*term_entries(row, h, 3 * n), 3 * n, max_features, fit_rows=2 * n)
    else:
        vec = like.vectorizer
        terms, col, r, count = term_entries(row, h, 3 * n, vec.vocabulary)
        all_ = vec.weigh(_csr(count, r, col, 3 * n, vec.size))
    tc, tr, tp = all_[:n], all_[n:2 * n], all_[2 * n:]
    blocks = ["tfidf", "tfidf_relevance", "surface"]
    dense = [RELEVANCE_WEIGHT * (_rowdot(tc, tp) - _rowdot(tr, tp))]
    fr = pl.DataFrame({"c": pl.Series(chosen, dtype=pl.Utf8), "r": pl.Series(rejected, dtype=pl.Utf8)})
    sc = np.log1p(fr.select(feature_exprs("c")).to_numpy().astype(float))
    sr = np.log1p(fr.select(feature_exprs("r")).to_numpy().astype(float))
    sd = sc - sr
    rms = like.surface_rms if like is not None and like.surface_rms is not None else \
        np.sqrt(np.mean(sd * sd, axis=0))
    sd = SURFACE_WEIGHT * sd / np.where(rms > 0, rms, 1.0) / np.sqrt(sd.shape[1])
    mats = [tc - tr, sp.csr_matrix(np.column_stack(dense)), sp.csr_matrix(sd)]
    if embedder is not None:
        ec = np.asarray(embedder.encode(list(chosen)), dtype=np.float32)
        er = np.asarray(embedder.encode(list(rejected)), dtype=np.float32)
        ep = np.asarray(embedder.encode(list(prompts)), dtype=np.float32)
        mats += [sp.csr_matrix(ec - er), sp.csr_matrix(RELEVANCE_WEIGHT * (_rowdot(ec, ep) - _rowdot(er, ep))[:, None])]
        blocks += ["embedding", "embedding_relevance"]
    x = sp.hstack(mats, format="csr", dtype=np.float64)
    assert x.shape[0] == n
    return Features(x, blocks, vec, rms)


def score_pairs(w: np.ndarray, like: Features, prompts: Sequence[str] | pl.Series, chosen: Sequence[str] | pl.Series,
                rejected: Sequence[str] | pl.Series, *, embedder: Embedder | None = None,
                chunk: int = 50_000) -> np.ndarray:
    """Logits ``x @ w`` of a model fitted on the pairs of ``like``, for other pairs, featurised alike in
    chunks of ``chunk`` pairs (bounded memory)."""
    out = np.empty(len(chosen))
    for a in range(0, len(chosen), chunk):
        b = min(a + chunk, len(chosen))
        x = difference_features(prompts[a:b], chosen[a:b], rejected[a:b], embedder=embedder, like=like).x
        out[a:b] = x @ w
    return out


def prompt_folds(prompts: Sequence[str], k: int, seed: int) -> np.ndarray:
    """Fold index per pair, grouped by prompt (identical prompts share a fold), seeded."""
    codes = pl.Series(list(prompts), dtype=pl.Utf8).rank("dense").to_numpy().astype(np.int64) - 1
    n_groups = int(codes.max()) + 1 if codes.size else 0
    order = np.random.default_rng(seed).permutation(n_groups)
    return order[codes] % max(1, min(k, n_groups))


def fit_symmetric_logistic(x: sp.csr_matrix | np.ndarray, c: float, w0: np.ndarray | None = None,
                           tol: float = 1e-4, max_iter: int = 5000) -> np.ndarray:
    """Weights of a logistic regression without intercept trained on both orientations of each row.

    The same optimum as sklearn's ``LogisticRegression(C=c, fit_intercept=False)`` fitted on
    ``vstack([x, -x])`` with labels 1 then 0 — the two copies of a row have the same loss
    log(1 + exp(-x w)), so the objective is mean_i log(1 + exp(-x_i w)) + ||w||^2 / (4 c n) on the
    rows once (half the work) — solved with L-BFGS-B under sklearn's stopping rule (projected
    gradient below ``tol``). ``w0``: a warm start (e.g. the previous fold's weights).
    """
    n, d = x.shape
    if n == 0:
        return np.zeros(d)
    lam = 1.0 / (2.0 * c * n)

    def f(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ w
        loss = np.logaddexp(0.0, -z).mean() + 0.5 * lam * (w @ w)
        grad = (-expit(-z) / n) @ x + lam * w  # x.T @ v without building the transpose (CSC matvec)
        return float(loss), grad

    start = np.zeros(d) if w0 is None else np.asarray(w0, dtype=float)
    with one_thread():
        res = minimize(f, start, jac=True, method="L-BFGS-B",
                       options={"maxiter": max_iter, "maxls": 50, "gtol": tol, "ftol": 64 * np.finfo(float).eps})
    return res.x


def crossfit_scores(x: sp.csr_matrix, folds: np.ndarray, c: float) -> np.ndarray:
    """Out-of-fold logits that the chosen side (the sign of each row of ``x``) is better."""
    s = np.zeros(x.shape[0])
    w = None
    for f in np.unique(folds):
        test = folds == f
        if test.all():
            continue
        w = fit_symmetric_logistic(x[~test], c, w0=w)
        s[test] = x[test] @ w
    return s


def repeated_crossfit(x: sp.csr_matrix, prompts: Sequence[str], c: float, *, k: int = 5, repeats: int = 3,
                      seed: int = 0, first: np.ndarray | None = None) -> np.ndarray:
    """Out-of-fold logits averaged over ``repeats`` cross-fits with different prompt-grouped fold
    splits (seeds ``seed``, ``seed + 1``...): the estimate then depends less on one split.
    ``first``: logits already computed for the split of ``seed``."""
    runs = []
    for r in range(repeats):
        if r == 0 and first is not None:
            runs.append(first)
        else:
            runs.append(crossfit_scores(x, prompt_folds(prompts, k, seed + r), c))
    return np.mean(runs, axis=0)


def _nll(theta: np.ndarray, s: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """Weighted mean negative log-likelihood of the flip model and its gradient in (beta, rho)."""
    beta, rho = theta
    q = expit(beta * s)
    p = np.maximum(rho + (1 - 2 * rho) * q, 1e-12)
    wp = w / p
    g_beta = -(1 - 2 * rho) * (wp @ (q * (1 - q) * s))
    g_rho = -(wp @ (1 - 2 * q))
    return float(-(w @ np.log(p))), np.array([g_beta, g_rho])


def fit_flip_calibration(s: np.ndarray, *, weights: np.ndarray | None = None,
                         start: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """Maximum-likelihood (beta, rho) of P(recorded label | s) = rho + (1 - 2 rho) sigmoid(beta s).

    ``s`` are logits of the recorded label being right. Returns (beta, rho, mean negative log-likelihood).
    Several starts (or one given ``start``) with L-BFGS-B, beta in [1e-3, 100], rho in [0, 0.49].
    Pairs of weight 0 (a bootstrap resample's left-out pairs) are dropped first.
    """
    s = np.asarray(s, dtype=float)
    if weights is None:
        w = np.full(s.size, 1.0 / s.size)
    else:
        w = np.asarray(weights, float)
        keep = w > 0
        s, w = s[keep], w[keep] / np.sum(w[keep])
    starts = [start] if start is not None else [(b, r) for b in (0.5, 3.0) for r in (0.02, 0.25)]
    best = None
    with one_thread():  # tiny BLAS calls: threads only contend (10x slower on a busy machine)
        for b0, r0 in starts:
            res = minimize(_nll, np.array([b0, r0]), args=(s, w), jac=True, method="L-BFGS-B",
                           bounds=[(1e-3, 100.0), (0.0, 0.49)])
            if best is None or res.fun < best.fun:
                best = res
    return float(best.x[0]), float(best.x[1]), float(best.fun)


def flip_posterior(s: np.ndarray, beta: float, rho: float, floor: float = 1e-6) -> np.ndarray:
    """P(recorded label wrong | s) = rho (1 - q) / (rho (1 - q) + (1 - rho) q), q = sigmoid(beta s).

    ``rho`` is floored at ``floor`` so that the posterior keeps the model's ranking when rho is ~0.
    """
    rho = max(rho, floor)
    q = expit(beta * s)
    wrong = rho * (1 - q)
    return wrong / (wrong + (1 - rho) * q)


def select_c(x: sp.csr_matrix, folds: np.ndarray, grid: Sequence[float] = C_GRID
             ) -> tuple[float, np.ndarray, dict[float, float]]:
    """Cross-fit for each C of ``grid``; keep the C whose calibrated out-of-fold NLL is lowest.

    Returns (C, its out-of-fold logits, {C: NLL}).
    """
    best: tuple[float, np.ndarray] | None = None
    scores: dict[float, float] = {}
    for c in grid:
        s = crossfit_scores(x, folds, c)
        scores[c] = fit_flip_calibration(s)[2]
        if best is None or scores[c] < scores[best[0]]:
            best = (c, s)
    assert best is not None
    return best[0], best[1], scores
