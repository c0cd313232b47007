"""MinHash near duplicates: each stage checked against a brute-force pure-Python definition.

Shingles against word tuples, signatures against a per-shingle loop, LSH buckets against grouping
the band tuples in a dict, Jaccard against Python sets, and the final pairs against all-pairs exact
Jaccard. The block and thread slicing is forced small so that those paths run on small data too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations

import numpy as np
import polars as pl
import pytest

from prefaudit.analyzers import minhash
from prefaudit.analyzers.minhash import (
    EMPTY,
    candidate_pairs,
    exact_jaccard,
    near_duplicate_pairs,
    shingle_hashes,
    signatures_from_shingles,
)

MASK = (1 << 64) - 1
MIX = [int(m) for m in minhash._MIX]


def _words(text: str | None, max_words: int) -> list[str]:
    return ("" if text is None else text).split(" ")[:max_words]


def _shingles(text: str | None, k: int = 3, max_words: int = 256) -> list[tuple[str, ...]]:
    w = _words(text, max_words)
    return [tuple(w)] if len(w) < k else [tuple(w[i:i + k]) for i in range(len(w) - k + 1)]


def _texts(seed: int, n: int = 400) -> list[str | None]:
    """Random texts over a small vocabulary, with planted edited copies and awkward cases."""
    rng = np.random.default_rng(seed)
    vocab = [f"w{i}" for i in range(40)]
    out: list[str | None] = [" ".join(rng.choice(vocab, size=int(rng.integers(1, 30)))) for _ in range(n)]
    for k in range(n // 4):  # edited copies: one word changed, dropped, or appended
        w = str(out[k]).split(" ")
        op = k % 3
        if op == 0:
            w[int(rng.integers(len(w)))] = "edit"
        elif op == 1 and len(w) > 1:
            del w[int(rng.integers(len(w)))]
        else:
            w.append("tail")
        out.append(" ".join(w))
    out += ["", None, "a", "a b", "a  b", " a b c", "a b c ", "w1 w2", "w1 w2", "w1 w2 w3"]
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def _brute_pairs(texts: list[str | None], threshold: float, k: int = 3,
                 max_words: int = 256) -> dict[tuple[int, int], float]:
    sets = [set(_shingles(t, k, max_words)) for t in texts]
    out = {}
    for i, j in combinations(range(len(texts)), 2):
        jac = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
        if jac >= threshold:
            out[(i, j)] = jac
    return out


@pytest.fixture(params=["default", "small blocks and threads"])
def slicing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test as is, then with tiny word/row blocks and three thread slices."""
    if request.param != "default":
        monkeypatch.setattr(minhash, "_WORDS", 7)
        monkeypatch.setattr(minhash, "_ROWS", 5)
        monkeypatch.setattr(minhash, "_SLICE", 11)
        monkeypatch.setattr(minhash, "_n_threads", lambda: 3)
    return request.param


@pytest.mark.parametrize(("k", "max_words"), [(3, 256), (2, 5), (4, 3)])
def test_shingle_hashes_match_word_tuples(slicing: str, k: int, max_words: int) -> None:
    texts = _texts(0)
    rows, hashes = shingle_hashes(texts, shingle=k, max_words=max_words)
    tuples = [(r, s) for r, t in enumerate(texts) for s in _shingles(t, k, max_words)]
    assert rows.tolist() == [r for r, _ in tuples]
    # equal shingles hash equal, different shingles differently (64-bit hashes: no collisions here)
    by_tuple: dict[tuple[str, ...], int] = {}
    for (_, s), h in zip(tuples, hashes.tolist(), strict=True):
        assert by_tuple.setdefault(s, h) == h
    assert len(set(by_tuple.values())) == len(by_tuple)


def _signature_loop(rows: np.ndarray, hashes: np.ndarray, n: int, n_bins: int) -> np.ndarray:
    """The signature definition, one shingle at a time with Python integers."""
    key_bits = math.ceil(math.log2(max(2, n * n_bins)))
    sig = np.full((n, n_bins), EMPTY, dtype=np.uint64)
    for r, h in zip(rows.tolist(), hashes.tolist(), strict=True):
        h = (h * MIX[2]) & MASK
        h ^= h >> 29
        b, v = h % n_bins, h >> key_bits
        sig[r, b] = min(int(sig[r, b]), v)
    return sig


@pytest.mark.parametrize("n_bins", [64, 50])
def test_signatures_match_definition(slicing: str, n_bins: int) -> None:
    texts = _texts(1)
    rows, hashes = shingle_hashes(texts)
    want = _signature_loop(rows, hashes, len(texts), n_bins)
    assert np.array_equal(signatures_from_shingles(rows, hashes, len(texts), n_bins=n_bins), want)
    perm = np.random.default_rng(0).permutation(rows.size)  # rows need not be in order
    assert np.array_equal(signatures_from_shingles(rows[perm], hashes[perm], len(texts), n_bins=n_bins), want)


def _bucket_loop(sig: np.ndarray, n_bands: int, group: np.ndarray | None) -> set[tuple[int, int]]:
    """Candidates by definition: rows with equal band contents (not all empty) share a bucket; each
    member pairs with the bucket's first row and, with groups, the first row of the other group."""
    r = sig.shape[1] // n_bands
    buckets: dict[tuple[int, tuple[int, ...]], list[int]] = defaultdict(list)
    for row in range(sig.shape[0]):
        for b in range(n_bands):
            band = tuple(int(x) for x in sig[row, b * r:(b + 1) * r])
            if any(x != int(EMPTY) for x in band):
                buckets[(b, band)].append(row)
    out = set()
    for members in buckets.values():
        reps = [members[0]]
        if group is not None:
            for gv in (0, 1):
                firsts = [m for m in members if group[m] == gv]
                if firsts:
                    reps.append(firsts[0])
        for m in members:
            for rep in reps:
                if rep != m and (rep == members[0] or group is None or group[m] != group[rep]):
                    out.add((min(m, rep), max(m, rep)))
    return out


@pytest.mark.parametrize("with_group", [False, True])
def test_candidate_pairs_match_band_grouping(slicing: str, with_group: bool) -> None:
    rng = np.random.default_rng(2)
    n, n_bins, n_bands = 300, 12, 4
    # few distinct values and many EMPTY bins: large buckets, all-empty bands, shared bands
    sig = rng.choice(np.array([1, 2, 3, int(EMPTY)], dtype=np.uint64), size=(n, n_bins), p=[0.1, 0.1, 0.1, 0.7])
    group = (rng.random(n) < 0.3).astype(np.int8) if with_group else None
    got = candidate_pairs(sig, n_bands=n_bands, group=group)
    assert got.dtype == np.int64 and got.shape[1] == 2
    assert [tuple(p) for p in got.tolist()] == sorted(_bucket_loop(sig, n_bands, group))


def test_buckets_split_on_full_keys_when_low_bits_collide(slicing: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Band keys that agree in the low bits used by the sort but differ above them form separate
    buckets (the rare re-sorted runs). The band keys are planted through a stand-in ``_band_keys``."""
    rng = np.random.default_rng(3)
    n, n_bands = 40, 4
    bits = (n * n_bands - 1).bit_length()
    high = rng.integers(0, 3, size=(n, n_bands)).astype(np.uint64) << np.uint64(64 - bits)
    planted = high | np.uint64(0x5A5A)  # three distinct full keys, one value of the sorted low bits
    ok = rng.random((n, n_bands)) < 0.8
    monkeypatch.setattr(minhash, "_band_keys", lambda block, _: (planted[block[:, 0]], ok[block[:, 0]]))
    group = (rng.random(n) < 0.5).astype(np.int8)
    got = candidate_pairs(np.arange(n, dtype=np.int64)[:, None], n_bands=n_bands, group=group)
    key = planted.ravel()
    ok = ok.ravel()
    buckets: dict[int, list[int]] = defaultdict(list)
    for e in np.flatnonzero(ok).tolist():
        buckets[int(key[e])].append(e // n_bands)
    want = set()
    for members in buckets.values():
        members = sorted(members)
        reps = [members[0]] + [next((m for m in members if group[m] == gv), None) for gv in (0, 1)]
        for m in members:
            for k, rep in enumerate(reps):
                if rep is not None and rep != m and (k == 0 or group[m] != group[rep]):
                    want.add((min(m, rep), max(m, rep)))
    assert len(buckets) == 3
    assert [tuple(p) for p in got.tolist()] == sorted(want)


def test_exact_jaccard_matches_python_sets(slicing: str) -> None:
    texts = _texts(4)
    rows, hashes = shingle_hashes(texts)
    rng = np.random.default_rng(4)
    pairs = rng.integers(0, len(texts), size=(500, 2))
    pairs[:5, 1] = pairs[:5, 0]  # a row with itself: 1.0
    sets = [set(_shingles(t)) for t in texts]
    want = [len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for i, j in pairs.tolist()]
    assert exact_jaccard(rows, hashes, pairs).tolist() == want
    perm = rng.permutation(rows.size)  # rows need not be in order
    assert exact_jaccard(rows[perm], hashes[perm], pairs).tolist() == want
    assert exact_jaccard(rows, hashes, np.zeros((0, 2), dtype=np.int64)).size == 0


@pytest.mark.parametrize("threshold", [0.8, 0.5])
def test_near_duplicate_pairs_match_all_pairs_brute_force(slicing: str, threshold: float) -> None:
    texts = _texts(5)
    truth = _brute_pairs(texts, threshold)
    assert len(truth) > 40
    got = near_duplicate_pairs(texts, threshold=threshold)
    assert got.schema == pl.Schema({"i": pl.Int64, "j": pl.Int64, "jaccard": pl.Float64})
    found = {(i, j): v for i, j, v in got.iter_rows()}
    assert list(found) == sorted(found)  # sorted, i < j, no repeats
    assert all(i < j for i, j in found)
    assert set(found) <= set(truth)  # every reported pair is a true one, with its exact Jaccard
    assert all(v == truth[p] for p, v in found.items())
    high = {p for p, v in truth.items() if v >= 0.8}  # LSH misses J >= 0.8 with probability < 0.1%
    assert high <= set(found)
    if threshold < 0.8:  # below 0.8 LSH may miss some; most are still found
        assert len(found) >= 0.8 * len(truth)


def test_near_duplicate_pairs_with_groups(slicing: str) -> None:
    texts = _texts(6)
    group = (np.arange(len(texts)) % 3 == 0).astype(np.int8)
    truth = _brute_pairs(texts, 0.8)
    got = near_duplicate_pairs(texts, threshold=0.8, group=group)
    found = {(i, j) for i, j, _ in got.iter_rows()}
    assert set(found) <= set(truth)
    assert {p for p in truth if group[p[0]] != group[p[1]]} <= found  # every cross-group pair


def test_near_duplicate_pairs_small_inputs() -> None:
    empty = near_duplicate_pairs([])
    assert empty.height == 0 and empty.columns == ["i", "j", "jaccard"]
    assert near_duplicate_pairs(["only one text here"]).height == 0
    got = near_duplicate_pairs(["a b c d e", "a b c d e", "", ""])
    assert got.rows() == [(0, 1, 1.0), (2, 3, 1.0)]
    assert near_duplicate_pairs(["a b c d e", "a b c d e"], n_bins=8, n_bands=16).height == 0  # no band


def test_dense_ids_match_numpy_unique() -> None:
    """Ranks among distinct values, also when many values share the top bits that are sorted first."""
    rng = np.random.default_rng(7)
    cases = [rng.integers(0, 2**63, 5000, dtype=np.uint64) * np.uint64(2),
             rng.integers(0, 30, 5000).astype(np.uint64),
             rng.integers(0, 2**20, 5000).astype(np.uint64) | np.uint64(7 << 60),  # runs of mixed values
             np.zeros(1, dtype=np.uint64)]
    for x in cases:
        assert np.array_equal(minhash._dense_ids(x), np.unique(x, return_inverse=True)[1])
