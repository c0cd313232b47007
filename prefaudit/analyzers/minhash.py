"""Vectorised near-duplicate text search: word shingles, MinHash (one-permutation hashing), LSH banding.

No per-text Python loop: texts are split into words with polars, word 3-shingles are hashed with
wrapping uint64 arithmetic in numpy, and each text's signature keeps, in each of ``n_bins`` hash bins,
the smallest shingle hash (one-permutation hashing, Li, Owen & Zhang 2012). Candidate pairs come from
LSH banding (``n_bands`` bands of ``n_bins / n_bands`` bins): texts with Jaccard similarity J share
some band with probability about 1 - (1 - J^r)^b (J = 0.8: > 0.999 with the defaults). Each
candidate's Jaccard similarity is then computed exactly on its hashed shingle sets, so the threshold
is applied to the true value, not to a noisy estimate.

Speed (about 1M distinct prompts in ~2-3 s on 2 cores): the work runs in cache-sized blocks with
in-place arithmetic, one slice of the texts per thread; signatures are minima by repeated scatter,
LSH buckets come from one sort of packed band keys, and every "unique" is a plain sort.
:func:`near_duplicate_pairs` never builds the (n, n_bins) signature matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import polars as pl

EMPTY = np.uint64(np.iinfo(np.uint64).max)
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))
_WORDS = 1 << 15  # words per block when mixing shingle hashes (256 KiB arrays: in L2 cache)
_ROWS = 1 << 10  # texts per block of signatures and band keys (512 KiB of signatures with 64 bins)
_SLICE = 1 << 16  # fewest texts per thread
T = TypeVar("T")


def shingle_hashes(texts: Sequence[str] | pl.Series, *, shingle: int = 3,
                   max_words: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Hashed word ``shingle``-grams of each text: (row, hash) arrays in row order (a shingle that
    occurs twice in a text appears twice: minima do not care, :func:`exact_jaccard` deduplicates).

    Texts are split on single spaces (normalise them first) and cut to their first ``max_words``
    words; a text with fewer words than ``shingle`` is one shingle (missing words hash as 0); an
    empty text has one shingle too. Words are hashed inside their lists (no explode of the words);
    shingles are mixed from shifted views of the flat word-hash array, and only texts shorter than
    ``shingle`` words need a fix-up. Large inputs are cut into one slice per thread.
    """
    s = pl.Series("t", texts, dtype=pl.Utf8).fill_null("")

    def part(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        words = s.slice(a, b - a).str.split(" ").list.head(max_words)
        nw = words.list.len().to_numpy().astype(np.int64)  # >= 1: splitting "" gives [""]
        h = words.list.eval(pl.element().hash(seed=7)).explode().to_numpy()
        ends = np.cumsum(nw)
        keep = np.ones(h.size, dtype=bool)  # drop the last ``shingle - 1`` positions of each text
        for j in range(1, shingle):
            keep[(ends - j)[nw >= j]] = False
        short = nw < shingle
        keep[(ends - nw)[short]] = True  # a text shorter than ``shingle`` words: one shingle
        counts = np.maximum(nw - (shingle - 1), 1)
        sh = _mix_shingles(h, shingle, keep)
        if short.any():  # their missing words count as 0, not as the next text's words
            sh[(np.cumsum(counts) - counts)[short]] = _short_shingles(h, (ends - nw)[short], nw[short], shingle)
        return counts, sh

    parts = _in_threads(part, s.len())
    counts = np.concatenate([p[0] for p in parts])
    hashes = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    return np.repeat(np.arange(s.len(), dtype=np.int64), counts), hashes


def _n_threads() -> int:
    """Threads for :func:`_in_threads`: polars' pool size (``POLARS_MAX_THREADS`` caps it)."""
    return pl.thread_pool_size()


def _in_threads(fn: Callable[[int, int], T], n: int) -> list[T]:
    """``fn(a, b)`` over consecutive slices [a, b) of range(n), one slice per thread (one slice when
    ``n`` is under twice :data:`_SLICE`), results in slice order. polars and numpy release the GIL
    in their kernels, so the slices run in parallel."""
    k = max(1, min(_n_threads(), n // _SLICE))
    edges = [n * i // k for i in range(k + 1)]
    if k == 1:
        return [fn(0, n)]
    with ThreadPoolExecutor(k) as ex:
        return list(ex.map(fn, edges[:-1], edges[1:]))


def _mix_shingles(h: np.ndarray, shingle: int, keep: np.ndarray) -> np.ndarray:
    """Hash of the ``shingle`` words starting at each position of the flat word hashes ``h`` where
    ``keep`` is set (words past the end of the array count as 0), in cache-sized blocks with
    in-place arithmetic."""
    n = h.size
    out = np.empty(int(np.count_nonzero(keep)), dtype=np.uint64)
    x, t = np.empty(min(n, _WORDS), dtype=np.uint64), np.empty(min(n, _WORDS), dtype=np.uint64)
    at = 0
    for a in range(0, n, _WORDS):
        b = min(n, a + _WORDS)
        xb, tb = x[: b - a], t[: b - a]
        np.multiply(h[a:b], _MIX[0], out=xb)
        for j in range(1, shingle):
            np.right_shift(xb, np.uint64(29), out=tb)
            xb ^= tb
            nxt = h[a + j: b + j]
            if nxt.size < b - a:  # the last block: pad past the end
                nxt = np.concatenate((nxt, np.zeros(b - a - nxt.size, dtype=np.uint64)))
            np.multiply(nxt, _MIX[j % len(_MIX)], out=tb)
            xb += tb
        np.right_shift(xb, np.uint64(31), out=tb)
        xb ^= tb
        xb *= _MIX[1]
        np.right_shift(xb, np.uint64(32), out=tb)
        xb ^= tb
        kb = xb[keep[a:b]]
        out[at: at + kb.size] = kb
        at += kb.size
    return out


def _short_shingles(h: np.ndarray, first: np.ndarray, nw: np.ndarray, shingle: int) -> np.ndarray:
    """Shingle hash of texts with fewer than ``shingle`` words (words past the end count as 0)."""
    sh = h[first] * _MIX[0]
    for j in range(1, shingle):
        nxt = np.where(j < nw, h[np.minimum(first + j, h.size - 1)], np.uint64(0))
        sh = (sh ^ (sh >> np.uint64(29))) + nxt * _MIX[j % len(_MIX)]
    sh = (sh ^ (sh >> np.uint64(31))) * _MIX[1]
    return sh ^ (sh >> np.uint64(32))


def _signature_blocks(rows: np.ndarray, hashes: np.ndarray, n_texts: int, n_bins: int, lo: int = 0,
                      hi: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, signatures of rows ``first`` to ``first + len``) for consecutive blocks of the rows
    ``lo`` to ``hi`` (``rows`` in order).

    A shingle hash (re-mixed) goes to bin ``hash % n_bins`` and the bin keeps the smallest
    ``hash >> key_bits`` (``key_bits``: bits of ``n_texts * n_bins``). Minima by repeated scatter:
    write every value to its cell, then rewrite only the values still below their cell's content
    (few: a text has few shingles per bin) until none is. The yielded array is reused by the next
    block.
    """
    hi = n_texts if hi is None else hi
    key_bits = int(np.ceil(np.log2(max(2, n_texts * n_bins))))
    starts = np.arange(lo, hi, _ROWS)
    bounds = np.searchsorted(rows, np.r_[starts, hi])
    buf = np.empty(min(hi - lo, _ROWS) * n_bins, dtype=np.uint64)
    pow2 = n_bins & (n_bins - 1) == 0
    for i, r0 in enumerate(starts):
        c = min(_ROWS, hi - r0)
        a, b = bounds[i], bounds[i + 1]
        out = buf[: c * n_bins]
        out.fill(EMPTY)
        hh = hashes[a:b] * _MIX[2]  # re-mix: shingle hashes may carry fewer than 64 bits
        hh ^= hh >> np.uint64(29)
        bin_ = hh & np.uint64(n_bins - 1) if pow2 else hh % np.uint64(n_bins)
        cell = (rows[a:b] - r0) * n_bins + bin_.astype(np.int64)
        val = hh >> np.uint64(key_bits)
        while cell.size:
            out[cell] = val
            lower = val < out[cell]
            cell, val = cell[lower], val[lower]
        yield int(r0), out.reshape(c, n_bins)


def signatures_from_shingles(rows: np.ndarray, hashes: np.ndarray, n_texts: int, *,
                             n_bins: int = 64) -> np.ndarray:
    """One-permutation MinHash signatures, shape (n_texts, n_bins), uint64; empty bins hold :data:`EMPTY`."""
    if rows.size and np.any(rows[1:] < rows[:-1]):
        o = np.argsort(rows, kind="stable")
        rows, hashes = rows[o], hashes[o]
    out = np.empty((n_texts, n_bins), dtype=np.uint64)

    def part(lo: int, hi: int) -> None:
        for r0, block in _signature_blocks(rows, hashes, n_texts, n_bins, lo, hi):
            out[r0: r0 + len(block)] = block

    _in_threads(part, n_texts)
    return out


def _band_keys(sig: np.ndarray, n_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Per (row, band): a 64-bit key of the band's ``r`` bins (a band's key differs from another's)
    and whether the band holds a non-empty bin."""
    n, k = sig.shape
    r = k // n_bands
    if r == 0:  # fewer bins than bands: every band is empty
        return np.zeros((n, n_bands), dtype=np.uint64), np.zeros((n, n_bands), dtype=bool)
    bands = sig[:, : n_bands * r].reshape(n, n_bands, r)
    with np.errstate(over="ignore"):  # the first step's mix of the band number is a constant per band
        k0 = np.arange(n_bands, dtype=np.uint64) * _MIX[1]
        k0 = (k0 ^ (k0 >> np.uint64(27))) * _MIX[0]
    key = bands[:, :, 0] + k0
    t = np.empty_like(key)
    empty = bands[:, :, 0].copy()
    for c in range(1, r):
        np.right_shift(key, np.uint64(27), out=t)
        key ^= t
        key *= _MIX[c % len(_MIX)]
        key += bands[:, :, c]
        empty &= bands[:, :, c]  # all ones only where every bin is EMPTY
    return key, empty != EMPTY


def _lsh_candidates(blocks: Callable[[int, int], Iterable[tuple[int, np.ndarray]]], n: int, n_bands: int,
                    group: np.ndarray | None) -> np.ndarray:
    """Candidate pairs (see :func:`candidate_pairs`) from ``blocks(lo, hi)``: (first row, signatures)
    of consecutive blocks of the rows ``lo`` to ``hi``.

    Each block's band keys are kept, and its non-empty bands are packed for the one sort of
    :func:`_bucket_pairs`: the key's low bits over the entry index ``row * n_bands + band``.
    """
    key = np.empty((n, n_bands), dtype=np.uint64)
    bits = np.uint64(max(1, (n * n_bands - 1).bit_length()))

    def part(lo: int, hi: int) -> list[np.ndarray]:
        out = []
        for r0, block in blocks(lo, hi):
            kb, ok = _band_keys(block, n_bands)
            key[r0: r0 + len(block)] = kb
            idx = np.flatnonzero(ok)
            packed = kb.ravel()[idx]
            packed <<= bits
            packed |= (idx + r0 * n_bands).astype(np.uint64)
            out.append(packed)
        return out

    packed = [p for ps in _in_threads(part, n) for p in ps]
    if sum(p.size for p in packed) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    return _bucket_pairs(key.ravel(), np.concatenate(packed), bits, n, n_bands, group)


def _bucket_pairs(key: np.ndarray, packed: np.ndarray, bits: np.uint64, n: int, n_bands: int,
                  group: np.ndarray | None) -> np.ndarray:
    """Candidate pairs from the flat band keys and the packed non-empty entries (see
    :func:`_lsh_candidates`). The low bits of a key are uniform (each key ends with the addition of
    a bin's value to a mixed product), so after one sort the entries whose low bits repeat are the
    real buckets plus rare collisions of those bits; they are then grouped on their full keys."""
    packed.sort()
    top = packed >> bits
    dup = np.zeros(packed.size, dtype=bool)
    dup[1:] = top[1:] == top[:-1]
    dup[:-1] |= dup[1:].copy()
    top, e = top[dup], (packed[dup] & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
    kd, rows = key[e], e // n_bands  # rows ascend within each run of equal low bits
    run = np.ones(kd.size, dtype=bool)
    run[1:] = top[1:] != top[:-1]
    rid = np.cumsum(run) - 1
    mixed = kd != kd[run][rid]
    if mixed.any():  # the rare runs holding several full keys: sorted by (key, row)
        bad = np.isin(rid, rid[mixed])
        o = np.lexsort((rows[bad], kd[bad]))
        kd = np.concatenate((kd[~bad], kd[bad][o]))
        rows = np.concatenate((rows[~bad], rows[bad][o]))
    start = np.ones(kd.size, dtype=bool)  # buckets: runs of equal full keys, rows ascending
    start[1:] = kd[1:] != kd[:-1]
    bucket = np.cumsum(start) - 1
    size = np.bincount(bucket)
    first = rows[start]  # each bucket's smallest row
    multi = size[bucket] > 1  # buckets of two or more entries
    rows, bucket = rows[multi], bucket[multi]
    found = [(rows, first[bucket])]
    if group is not None:
        g = np.asarray(group)[rows]
        none = -1
        for gv in (0, 1):  # each bucket's first member of group gv, paired with the other group's
            bs, rs = bucket[g == gv], rows[g == gv]
            lead = np.ones(bs.size, dtype=bool)
            lead[1:] = bs[1:] != bs[:-1]
            rep = np.full(size.size, none, dtype=np.int64)
            rep[bs[lead]] = rs[lead]
            other = (g != gv) & (rep[bucket] != none)
            found.append((rows[other], rep[bucket[other]]))
    a = np.concatenate([f[0] for f in found])
    b = np.concatenate([f[1] for f in found])
    diff = a != b
    code = _unique(np.minimum(a, b)[diff] * np.int64(n) + np.maximum(a, b)[diff])
    return np.stack((code // n, code % n), axis=1).astype(np.int64).reshape(-1, 2)


def candidate_pairs(sig: np.ndarray, *, n_bands: int = 16, group: np.ndarray | None = None) -> np.ndarray:
    """LSH candidate pairs (i < j) as an (m, 2) int64 array (deduplicated, sorted).

    Rows that agree on all bins of some band (not all empty) are candidates. In each band bucket every
    member is paired with the bucket's first member, and, when ``group`` (0/1 per row) is given, also
    with the bucket's first member of the other group (for leakage between two sets). Buckets come
    from one sort of the band keys (near-linear in rows).
    """
    n = sig.shape[0]

    def blocks(lo: int, hi: int) -> Iterator[tuple[int, np.ndarray]]:
        return ((r0, sig[r0: min(hi, r0 + _ROWS)]) for r0 in range(lo, hi, _ROWS))

    return _lsh_candidates(blocks, n, n_bands, group)


def exact_jaccard(rows: np.ndarray, hashes: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Jaccard similarity of the hashed shingle sets of each (i, j) in ``pairs`` (vectorised).

    The used rows' shingles get dense ids; each row's distinct ids come from one sort of packed
    (row, id) codes, and each pair's intersection from one sort of packed (pair, id) codes over
    both of its sets (an id that occurs twice for a pair is shared).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    m = len(pairs)
    if m == 0:
        return np.zeros(0)
    u = _unique(pairs.ravel())
    if rows.size and np.all(rows[1:] >= rows[:-1]):  # in row order: each used row is a slice
        lo, hi = np.searchsorted(rows, u, "left"), np.searchsorted(rows, u, "right")
        used = _ranges(lo, hi - lo)
        rank = np.repeat(np.arange(u.size), hi - lo)  # position of each used shingle's row in u
    else:
        used = np.flatnonzero(np.isin(rows, u))
        rank = np.searchsorted(u, rows[used])
    hid = _dense_ids(hashes[used])
    hbits = max(1, int(hid.max(initial=0)).bit_length())
    code = _unique((rank << hbits) | hid)
    start = np.searchsorted(code >> hbits, np.arange(u.size + 1))
    size = np.diff(start)  # distinct shingles of each used row
    sid = code & ((1 << hbits) - 1)
    ci, cj = np.searchsorted(u, pairs[:, 0]), np.searchsorted(u, pairs[:, 1])
    inter = np.zeros(m, dtype=np.int64)
    step = max(1, 1 << max(0, 62 - hbits))  # pairs per pass so that (pair, id) fits in 63 bits
    for c0 in range(0, m, step):
        i, j = ci[c0: c0 + step], cj[c0: c0 + step]
        tag = np.arange(i.size, dtype=np.int64)
        both = np.concatenate((np.repeat(tag, size[i]) << hbits | sid[_ranges(start[i], size[i])],
                               np.repeat(tag, size[j]) << hbits | sid[_ranges(start[j], size[j])]))
        both.sort()
        inter[c0: c0 + step] = np.bincount(both[1:][both[1:] == both[:-1]] >> hbits, minlength=i.size)
    return inter / np.maximum(size[ci] + size[cj] - inter, 1)


def _dense_ids(x: np.ndarray) -> np.ndarray:
    """Rank of each value of ``x`` (uint64) among its distinct values, without an argsort: one sort of
    the values' top bits packed over their index; runs of equal top bits whose full values differ
    (rare) are re-sorted on the full values."""
    ibits = np.uint64(max(1, (x.size - 1).bit_length()))
    packed = x >> ibits
    packed <<= ibits
    packed |= np.arange(x.size, dtype=np.uint64)
    packed.sort()
    idx = (packed & ((np.uint64(1) << ibits) - np.uint64(1))).astype(np.int64)
    xs = x[idx]
    same_top = (packed[1:] >> ibits) == (packed[:-1] >> ibits)
    mixed = same_top & (xs[1:] != xs[:-1])
    if mixed.any():
        run = np.cumsum(np.r_[True, ~same_top])
        at = np.flatnonzero(np.isin(run, run[1:][mixed]))
        o = np.lexsort((xs[at], run[at]))
        idx[at], xs[at] = idx[at][o], xs[at][o]
    new = np.ones(x.size, dtype=bool)
    new[1:] = xs[1:] != xs[:-1]
    ids = np.empty(x.size, dtype=np.int64)
    ids[idx] = np.cumsum(new) - 1
    return ids


def _unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an integer array (one sort; numpy's ``unique`` hashes first, which
    is several times slower on millions of values)."""
    x = np.sort(x)
    keep = np.ones(x.size, dtype=bool)
    keep[1:] = x[1:] != x[:-1]
    return x[keep]


def _ranges(start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start[k], start[k] + length[k])`` over k."""
    offset = np.repeat(start - np.cumsum(length) + length, length)
    return offset + np.arange(offset.size)


def near_duplicate_pairs(texts: Sequence[str] | pl.Series, *, threshold: float = 0.8, n_bins: int = 64,
                         n_bands: int = 16, group: np.ndarray | None = None, shingle: int = 3,
                         max_words: int = 256) -> pl.DataFrame:
    """Pairs of rows (i < j) whose word-shingle Jaccard similarity is at least ``threshold``.

    Columns ``i``, ``j`` (row positions in ``texts``) and ``jaccard``. With ``group``, candidates also
    include cross-group pairs found through each bucket's first member of the other group.
    """
    texts = pl.Series("t", texts, dtype=pl.Utf8)
    rows, hashes = shingle_hashes(texts, shingle=shingle, max_words=max_words)
    n = texts.len()

    def blocks(lo: int, hi: int) -> Iterator[tuple[int, np.ndarray]]:  # no (n, n_bins) signature matrix
        return _signature_blocks(rows, hashes, n, n_bins, lo, hi)

    cand = _lsh_candidates(blocks, n, n_bands, group)
    jac = exact_jaccard(rows, hashes, cand)
    keep = jac >= threshold
    return pl.DataFrame({"i": cand[keep, 0], "j": cand[keep, 1], "jaccard": jac[keep]},
                        schema={"i": pl.Int64, "j": pl.Int64, "jaccard": pl.Float64})
