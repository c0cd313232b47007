"""Vectorised near-duplicate text search: word shingles, MinHash (one-permutation hashing), LSH banding.

No per-text Python loop: texts are split into words with polars, word 3-shingles are hashed with
wrapping uint64 arithmetic in numpy, and each text's signature keeps, in each of ``n_bins`` hash bins,
the smallest shingle hash (one-permutation hashing, Li, Owen & Zhang 2012). Candidate pairs come from
LSH banding (``n_bands`` bands of ``n_bins / n_bands`` bins): texts with Jaccard similarity J share
some band with probability about 1 - (1 - J^r)^b (J = 0.8: > 0.999 with the defaults). Each
candidate's Jaccard similarity is then computed exactly on its hashed shingle sets (vectorised with
polars), so the threshold is applied to the true value, not to a noisy estimate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

EMPTY = np.uint64(np.iinfo(np.uint64).max)
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def shingle_hashes(texts: Sequence[str] | pl.Series, *, shingle: int = 3,
                   max_words: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Hashed word ``shingle``-grams of each text: (row, hash) arrays in row order (a shingle that
    occurs twice in a text appears twice: minima do not care, :func:`exact_jaccard` deduplicates).

    Texts are split on single spaces (normalise them first) and cut to their first ``max_words``
    words; a text with fewer words than ``shingle`` is one shingle; an empty text has one shingle too.
    """
    s = pl.Series("t", texts, dtype=pl.Utf8).fill_null("")
    w = (pl.DataFrame({"t": s}).with_row_index("row")
         .select("row", pl.col("t").str.split(" ").list.head(max_words).alias("w"))
         .explode("w").with_columns(pl.col("w").hash(seed=7).alias("h")))
    rows = w["row"].to_numpy().astype(np.int64)
    h = w["h"].to_numpy()
    n = rows.size
    counts = np.bincount(rows, minlength=s.len())
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    pos = np.arange(n) - starts[rows]  # position of each word in its text
    nw = counts[rows]
    with np.errstate(over="ignore"):
        sh = h * _MIX[0]
        for j in range(1, shingle):  # words past the end of the text count as 0
            nxt = np.zeros_like(h)
            nxt[: n - j] = h[j:]
            nxt[pos + j >= nw] = 0
            sh = (sh ^ (sh >> np.uint64(29))) + nxt * _MIX[j % len(_MIX)]
        sh = (sh ^ (sh >> np.uint64(31))) * _MIX[1]
        sh = sh ^ (sh >> np.uint64(32))
    keep = (pos <= nw - shingle) | ((nw < shingle) & (pos == 0))
    return rows[keep], sh[keep]


def signatures_from_shingles(rows: np.ndarray, hashes: np.ndarray, n_texts: int, *,
                             n_bins: int = 64) -> np.ndarray:
    """One-permutation MinHash signatures, shape (n_texts, n_bins), uint64; empty bins hold :data:`EMPTY`."""
    out = np.full(n_texts * n_bins, EMPTY, dtype=np.uint64)
    if rows.size == 0:
        return out.reshape(n_texts, n_bins)
    with np.errstate(over="ignore"):  # re-mix: shingle hashes may carry fewer than 64 bits
        hashes = hashes * _MIX[2]
        hashes = hashes ^ (hashes >> np.uint64(29))
    # one sort of (row, bin | value) packed in a uint64 finds each (row, bin)'s minimum value
    key_bits = int(np.ceil(np.log2(max(2, n_texts * n_bins))))
    key = (rows * n_bins + (hashes % np.uint64(n_bins)).astype(np.int64)).astype(np.uint64)
    packed = np.sort((key << np.uint64(64 - key_bits)) | (hashes >> np.uint64(key_bits)))
    key = packed >> np.uint64(64 - key_bits)
    first = np.ones(key.size, dtype=bool)
    first[1:] = key[1:] != key[:-1]
    out[key[first].astype(np.int64)] = packed[first] & np.uint64((1 << (64 - key_bits)) - 1)
    return out.reshape(n_texts, n_bins)


def candidate_pairs(sig: np.ndarray, *, n_bands: int = 16, group: np.ndarray | None = None) -> np.ndarray:
    """LSH candidate pairs (i < j) as an (m, 2) int64 array (deduplicated).

    Rows that agree on all bins of some band (not all empty) are candidates. In each band bucket every
    member is paired with the bucket's first member, and, when ``group`` (0/1 per row) is given, also
    with the bucket's first member of the other group (for leakage between two sets). Linear in rows.
    """
    n, k = sig.shape
    r = k // n_bands
    bands = sig[:, : n_bands * r].reshape(n, n_bands, r)
    with np.errstate(over="ignore"):
        key = np.arange(n_bands, dtype=np.uint64)[None, :] * _MIX[1]  # a band's key differs from another's
        for c in range(r):
            key = (key ^ (key >> np.uint64(27))) * _MIX[c % len(_MIX)] + bands[:, :, c]
    nonempty = (bands != EMPTY).any(axis=2)
    d = pl.DataFrame({"key": key.ravel(), "row": np.repeat(np.arange(n, dtype=np.int64), n_bands),
                      "ok": nonempty.ravel()})
    d = d.filter(pl.col("ok") & pl.col("key").is_duplicated()).drop("ok")  # buckets of two or more rows
    found = [d.select("row", pl.col("row").first().over("key").alias("rep"))]
    if group is not None:
        d = d.with_columns(pl.Series("g", np.asarray(group)[d["row"].to_numpy()]))
        for g in (0, 1):
            rep = d.filter(pl.col("g") == g).group_by("key").agg(pl.col("row").min().alias("rep"))
            found.append(d.filter(pl.col("g") != g).join(rep, on="key").select("row", "rep"))
    allp = (pl.concat(found).filter(pl.col("row") != pl.col("rep"))
            .select(pl.min_horizontal("row", "rep").alias("i"), pl.max_horizontal("row", "rep").alias("j"))
            .unique().sort("i", "j"))
    return allp.to_numpy().astype(np.int64).reshape(-1, 2)


def exact_jaccard(rows: np.ndarray, hashes: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Jaccard similarity of the hashed shingle sets of each (i, j) in ``pairs`` (vectorised)."""
    if len(pairs) == 0:
        return np.zeros(0)
    used = np.isin(rows, np.unique(pairs))
    sets = pl.DataFrame({"row": rows[used], "h": hashes[used]}).unique()
    size = sets.group_by("row").len().rename({"len": "n"})
    cand = pl.DataFrame({"c": np.arange(len(pairs)), "i": pairs[:, 0], "j": pairs[:, 1]})
    inter = (cand.join(sets.rename({"row": "i"}), on="i").join(sets.rename({"row": "j"}), on=["j", "h"])
             .group_by("c").len().rename({"len": "inter"}))
    t = (cand.join(size.rename({"row": "i", "n": "ni"}), on="i", how="left")
         .join(size.rename({"row": "j", "n": "nj"}), on="j", how="left")
         .join(inter, on="c", how="left").sort("c").fill_null(0))
    union = (t["ni"] + t["nj"] - t["inter"]).to_numpy()
    return t["inter"].to_numpy() / np.maximum(union, 1)


def near_duplicate_pairs(texts: Sequence[str] | pl.Series, *, threshold: float = 0.8, n_bins: int = 64,
                         n_bands: int = 16, group: np.ndarray | None = None, shingle: int = 3,
                         max_words: int = 256) -> pl.DataFrame:
    """Pairs of rows (i < j) whose word-shingle Jaccard similarity is at least ``threshold``.

    Columns ``i``, ``j`` (row positions in ``texts``) and ``jaccard``. With ``group``, candidates also
    include cross-group pairs found through each bucket's first member of the other group.
    """
    texts = pl.Series("t", texts, dtype=pl.Utf8)
    rows, hashes = shingle_hashes(texts, shingle=shingle, max_words=max_words)
    sig = signatures_from_shingles(rows, hashes, texts.len(), n_bins=n_bins)
    cand = candidate_pairs(sig, n_bands=n_bands, group=group)
    jac = exact_jaccard(rows, hashes, cand)
    keep = jac >= threshold
    return pl.DataFrame({"i": cand[keep, 0], "j": cand[keep, 1], "jaccard": jac[keep]},
                        schema={"i": pl.Int64, "j": pl.Int64, "jaccard": pl.Float64})
