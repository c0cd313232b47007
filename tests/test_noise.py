"""Label noise: synthetic ground truth (random flips without annotations, annotator votes), swap symmetry,
contradictions from the hygiene analyzer, edge cases."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from prefaudit.analyzers import noise_model as nm
from prefaudit.analyzers.base import AuditContext
from prefaudit.analyzers.noise import NoiseAnalyzer
from prefaudit.data.preference_set import PreferenceSet
from prefaudit.synth import make


@pytest.fixture(scope="module")
def flipped():
    data = make(flip_rate=0.2)  # generator defaults otherwise
    return data, NoiseAnalyzer().run(data.pairs, AuditContext(seed=0))


def test_synthetic_flips_rate_and_ranking(flipped) -> None:
    data, r = flipped
    truth = data.noise_rate.value
    assert truth == pytest.approx(0.2)
    rate = r.metrics["noise.estimated_rate"]
    assert abs(rate.value - truth) <= 0.05
    assert rate.ci is not None and rate.ci[0] <= rate.value <= rate.ci[1]
    j = data.truth.select("pair_id", "flipped").join(r.pairs, on="pair_id")
    auroc = roc_auc_score(j["flipped"].to_numpy(), -j["noise_score"].to_numpy())
    assert auroc >= 0.90
    flags = j["noise_flag"].to_numpy()
    flips = j["flipped"].to_numpy()
    assert flips[flags].mean() > 2 * flips.mean()  # flags are enriched for the injected flips
    assert r.config["embeddings"] is False and "no embedder" in r.config["note"]
    assert r.pairs["noise_score"].is_between(0, 1).all()


def test_plot_and_details(flipped) -> None:
    from matplotlib.figure import Figure

    _, r = flipped
    assert isinstance(r.plot(), Figure)
    cal = r.details["calibration"]
    assert cal["n"].sum() == r.pairs.height
    assert r.details["model"]["rho"] == pytest.approx(r.metrics["noise.estimated_rate"].value)


def test_difference_features_are_antisymmetric() -> None:
    data = make(n_pairs=60, n_eval=0, n_target=0, seed=3)
    df = data.pairs.df
    p, c, rj = df["prompt"].to_list(), df["chosen"].to_list(), df["rejected"].to_list()
    x = nm.difference_features(p, c, rj).x
    x_swapped = nm.difference_features(p, rj, c).x
    assert abs(x + x_swapped).max() < 1e-9
    # a model without intercept on these gives P(b over a) = 1 - P(a over b); trained on both
    # orientations, its out-of-fold logit for the recorded label does not depend on which side is chosen
    folds = nm.prompt_folds(p, 3, 0)
    assert np.allclose(nm.crossfit_scores(x, folds, 0.1), nm.crossfit_scores(x_swapped, folds, 0.1), atol=1e-6)


def test_swapping_every_pair_changes_nothing() -> None:
    data = make(n_pairs=150, flip_rate=0.1, n_eval=0, n_target=0, seed=5)
    an = NoiseAnalyzer(n_repeats=1, n_boot=20)
    a = an.run(data.pairs)
    b = an.run(data.pairs.swapped(data.pairs.pair_ids))
    assert np.allclose(a.pairs["noise_logit"].to_numpy(), b.pairs["noise_logit"].to_numpy(), atol=1e-6)
    assert a.metrics["noise.estimated_rate"].value == pytest.approx(b.metrics["noise.estimated_rate"].value,
                                                                    abs=1e-6)


def test_flip_calibration_recovers_rho() -> None:
    rng = np.random.default_rng(0)
    m = rng.normal(0, 4, 50_000)  # a calibrated model's logit that response a is better
    a_better = rng.random(m.size) < 1 / (1 + np.exp(-m))
    recorded_a = a_better ^ (rng.random(m.size) < 0.25)  # 25% of the labels flipped at random
    s = np.where(recorded_a, m, -m)  # logit that the recorded label is right
    beta, rho, _ = nm.fit_flip_calibration(s)
    assert rho == pytest.approx(0.25, abs=0.01) and beta == pytest.approx(1.0, abs=0.1)
    post = nm.flip_posterior(np.array([10.0, 0.0, -10.0]), 1.0, 0.25)
    assert post[0] < 0.01 and post[1] == pytest.approx(0.25) and post[2] > 0.99


def test_contradictions_feed_the_estimate() -> None:
    data = make(n_pairs=120, n_eval=0, n_target=0, seed=7)
    df = data.pairs.df
    base = df.head(4)
    # each of 4 pairs appears twice more: once as recorded, once labeled the other way
    dup = base.with_columns(pl.col("pair_id") + "-dup")
    contra = base.with_columns(pl.col("pair_id") + "-contra", pl.col("rejected").alias("chosen"),
                               pl.col("chosen").alias("rejected"))
    ps = PreferenceSet(pl.concat([df, dup, contra]))
    r = NoiseAnalyzer(n_repeats=1, n_boot=20).run(ps)
    marked = r.pairs.filter(pl.col("noise_contradiction").is_not_null())
    assert marked.height == 12
    wrong = marked.filter(pl.col("pair_id").is_in(contra["pair_id"].implode()))  # the minority side
    assert wrong["noise_flag"].all() and (wrong["noise_score"] <= 0.5).all()
    assert r.metrics["noise.contradiction_share"].value == pytest.approx(12 / ps.df.height)
    assert r.metrics["noise.estimated_rate"].value >= 4 / ps.df.height


def test_annotated_posterior_tracks_wrong_consensus() -> None:
    data = make(annotator_accuracies=[0.9, 0.8, 0.7, 0.6], n_pairs=800, n_eval=0, n_target=0, seed=2)
    r = NoiseAnalyzer(n_boot=100).run(data.pairs)
    assert r.config["source"].startswith("annotations")
    t = data.truth.join(r.pairs, on="pair_id")
    wrong = (t["consensus"] != t["true_label"]).to_numpy()
    assert roc_auc_score(wrong, -t["noise_score"].to_numpy()) >= 0.9
    assert r.metrics["noise.estimated_rate"].value == pytest.approx(wrong.mean(), abs=0.03)
    assert 0 < r.metrics["noise.split_vote_share"].value < 1
    # a recorded label swapped against the votes is seen as wrong
    ids = data.pairs.df.filter(~pl.col("tie"))["pair_id"].head(50).to_list()
    r2 = NoiseAnalyzer(n_boot=20).run(data.pairs.swapped(ids))
    before = r.pairs.filter(pl.col("pair_id").is_in(ids))["noise_score"].mean()
    after = r2.pairs.filter(pl.col("pair_id").is_in(ids))["noise_score"].mean()
    assert after < 0.5 < before


def test_edge_cases() -> None:
    empty = PreferenceSet(pl.DataFrame(schema={"pair_id": pl.Utf8, "prompt": pl.Utf8, "chosen": pl.Utf8,
                                               "rejected": pl.Utf8}))
    assert NoiseAnalyzer().run(empty).skipped
    tiny = make(n_pairs=6, n_eval=0, n_target=0).pairs
    assert "too few" in NoiseAnalyzer().run(tiny).skipped
    data = make(n_pairs=80, n_eval=0, n_target=0, seed=4, tie_share=0.0)
    ps = PreferenceSet(data.pairs.df.with_columns((pl.col("pair_id") == data.pairs.pair_ids[0]).alias("tie")))
    r = NoiseAnalyzer(n_repeats=1, n_boot=20).run(ps)
    tie_row = r.pairs.filter(pl.col("pair_id") == data.pairs.pair_ids[0])
    assert tie_row["noise_score"].item() is None and tie_row["noise_flag"].item() is False
    assert r.metrics["noise.ties_left_out"].value == 1
    for m in r.metrics.values():
        assert m.value is None or math.isfinite(m.value)


def test_lone_rater_pairs_use_the_crowd_accuracy() -> None:
    from prefaudit.analyzers.dawid_skene import dawid_skene
    from prefaudit.data.preference_set import Annotations

    rows = [(str(i), w, "a") for i in range(20) for w in ("u", "v")]  # u and v agree on 20 pairs...
    rows += [("20", "u", "b"), ("20", "v", "a"), ("21", "lone", "a"), ("22", "lone", "b")]  # ...not on one
    ann = Annotations(pl.DataFrame(rows, schema={"pair_id": pl.Utf8, "annotator_id": pl.Utf8, "label": pl.Utf8},
                                   orient="row"))
    ids = [str(i) for i in range(23)]
    df = pl.DataFrame({"pair_id": ids, "prompt": ids, "chosen": ["x"] * 23, "rejected": ["y"] * 23,
                       "chosen_side": ["a"] * 23})
    r = NoiseAnalyzer(n_boot=20).run(PreferenceSet(df, annotations=ann))
    acc = dawid_skene(ann.df).accuracies.filter(pl.col("annotator_id") != "lone")["accuracy"].median()
    score = dict(r.pairs.select("pair_id", "noise_score").iter_rows())
    assert r.metrics["noise.lone_rater_pairs"].value == 2
    # 21: the lone rater voted the recorded label, 22 against it; Dawid-Skene alone makes "lone" perfect
    assert score["21"] == pytest.approx(acc) and score["22"] == pytest.approx(1 - acc)
    assert 0.5 < acc < 1


def test_tulu_vote_noise(tulu_annotations_path) -> None:
    import prefaudit

    ps = prefaudit.load(tulu_annotations_path, format="tulu")
    r = NoiseAnalyzer(n_boot=100).run(ps)
    assert r.pairs["noise_score"].is_not_null().all() and r.pairs["noise_score"].is_between(0, 1).all()
    assert r.metrics["noise.lone_rater_pairs"].value > 0
    rate = r.metrics["noise.estimated_rate"]
    assert rate.ci[0] < rate.value < rate.ci[1] and 0.05 < rate.value < 0.5
    assert r.metrics["noise.split_vote_share"].n == 121


def test_hashed_tfidf_matches_sklearn() -> None:
    """Without hash collisions the hashed TF-IDF is sklearn's TfidfVectorizer up to a column
    permutation, so every inner product between documents is the same."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = make(n_pairs=200, n_eval=0, n_target=0, seed=4)
    texts = data.pairs.df["chosen"].to_list() + data.pairs.df["rejected"].to_list()
    ref = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(texts)
    ours = nm.HashedTfidf.fit(texts, max_features=1_000_000)
    assert ours.size == len(ref.vocabulary_)
    probe = texts[:50] + ["An unseen text, with the words of the corpus: " + texts[7]]
    a, b = ref.transform(probe).toarray(), ours.transform(probe).toarray()
    assert np.allclose(a @ a.T, b @ b.T, atol=1e-6)
    assert np.allclose(np.sort(ref.idf_), np.sort(ours.idf), atol=1e-9)


def test_symmetric_logistic_matches_sklearn_on_both_orientations() -> None:
    """The half-size fit reaches sklearn's optimum on the doubled data set (rows and their negations)."""
    from scipy.sparse import random as sparse_random
    from scipy.sparse import vstack
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = sparse_random(300, 40, density=0.2, format="csr", random_state=1)
    x = x.multiply(np.where(rng.random((300, 1)) < 0.7, 1.0, -1.0)).tocsr()
    for c in (0.1, 1.0):
        ref = LogisticRegression(C=c, fit_intercept=False, tol=1e-10, max_iter=10_000).fit(
            vstack([x, -x]), np.r_[np.ones(300), np.zeros(300)])
        w = nm.fit_symmetric_logistic(x, c, tol=1e-10)
        assert np.allclose(w, ref.coef_.ravel(), atol=1e-5)


def test_fit_on_a_sample_scores_every_pair(flipped) -> None:
    """fit_pairs: cross-fit on a seeded sample, score the rest out of sample — every pair gets a score, and
    the out-of-sample scores find the injected flips about as well as the cross-fitted ones."""
    data, full = flipped
    r = NoiseAnalyzer(fit_pairs=800).run(data.pairs, AuditContext(seed=0))
    assert r.details["model"]["fit_pairs"] == 800 and r.details["model"]["scored_out_of_sample"] == 1200
    assert r.pairs["noise_score"].null_count() == 0 and r.pairs.height == len(data.pairs)
    rate = r.metrics["noise.estimated_rate"]
    assert rate.n == 800 and "sample of 800" in rate.note
    assert abs(rate.value - data.noise_rate.value) <= 0.07
    j = data.truth.select("pair_id", "flipped").join(r.pairs, on="pair_id")
    auroc = roc_auc_score(j["flipped"].to_numpy(), -j["noise_score"].to_numpy())
    assert auroc >= 0.85
    # a sample as large as the data is the ordinary cross-fit
    same = NoiseAnalyzer(fit_pairs=len(data.pairs)).run(data.pairs, AuditContext(seed=0))
    assert np.array_equal(same.pairs["noise_logit"].to_numpy(), full.pairs["noise_logit"].to_numpy())


def test_find_label_issues_equals_cleanlab() -> None:
    """The reimplementation flags exactly what cleanlab's find_label_issues (the peer) flags: binary and
    3-class, balanced and skewed labels, tied probabilities, informative and useless models."""
    from cleanlab.filter import find_label_issues as cl_find

    from prefaudit.analyzers.noise import find_label_issues

    rng = np.random.default_rng(0)
    for trial in range(120):
        k = 2 if trial % 3 else 3
        n = int(rng.choice([3, 10, 57, 400, 3000]))
        truth = rng.integers(0, k, n)
        logits = rng.normal(0, rng.choice([0.1, 1.0, 4.0]), (n, k)) + 2.0 * np.eye(k)[truth]
        if trial % 4 == 0:
            logits = np.round(logits, 1)  # many tied margins
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        labels = np.where(rng.random(n) < rng.choice([0.05, 0.3]), rng.integers(0, k, n), truth)
        if trial % 5 == 0:
            labels[rng.random(n) < 0.8] = 0  # skewed classes
        if np.unique(labels).size < 2:
            continue
        ours = find_label_issues(labels, p)
        ref = np.asarray(cl_find(labels, p, n_jobs=1), dtype=bool)
        assert np.array_equal(ours, ref), (trial, n, k)


def test_term_entries_sorted_key_path_equals_the_argsort_path() -> None:
    """Counting by one value sort of ``hash prefix | row`` keys gives the (term, row, count) entries of the
    exact argsort path (forced here by a prefix so short that prefixes collide), with and without a
    vocabulary; and the counts are those of a plain Python count."""
    from collections import Counter

    data = make(n_pairs=150, n_eval=0, n_target=0, seed=6)
    texts = data.pairs.df["chosen"].to_list() + data.pairs.df["prompt"].to_list()
    row, h = nm.term_hashes(texts)
    fast = nm.term_entries(row, h, len(texts))
    slow = nm.term_entries(row, h, len(texts), _shift=60)  # 16 prefixes: collisions, so the argsort path
    for a, b in zip(fast, slow, strict=True):
        assert np.array_equal(a, b)
    vocab = fast[0][::3]
    for a, b in zip(nm.term_entries(row, h, len(texts), vocab), nm.term_entries(row, h, len(texts), vocab, _shift=60),
                    strict=True):
        assert np.array_equal(a, b)
    terms, col, r, count = fast
    ref = Counter(zip(row.tolist(), h.tolist(), strict=True))
    assert sum(count) == h.size and len(count) == len(ref)
    assert all(ref[(int(i), int(terms[j]))] == k for i, j, k in zip(r, col, count, strict=True))


def test_default_repeats_drop_to_one_split_on_large_samples(monkeypatch) -> None:
    """n_repeats=None averages 3 fold splits below SINGLE_SPLIT_FROM fitted pairs and cross-fits one from
    there (what n_repeats=1 gives)."""
    from prefaudit.analyzers import noise as noise_mod

    data = make(n_pairs=150, flip_rate=0.1, n_eval=0, n_target=0, seed=8).pairs
    small = NoiseAnalyzer(n_boot=10).run(data)
    assert small.details["model"]["n_repeats"] == 3
    three = NoiseAnalyzer(n_repeats=3, n_boot=10).run(data)
    assert np.array_equal(small.pairs["noise_logit"].to_numpy(), three.pairs["noise_logit"].to_numpy())
    monkeypatch.setattr(noise_mod, "SINGLE_SPLIT_FROM", 100)
    big = NoiseAnalyzer(n_boot=10).run(data)
    one = NoiseAnalyzer(n_repeats=1, n_boot=10).run(data)
    assert big.details["model"]["n_repeats"] == 1
    assert np.array_equal(big.pairs["noise_logit"].to_numpy(), one.pairs["noise_logit"].to_numpy())
    assert not np.allclose(big.pairs["noise_logit"].to_numpy(), three.pairs["noise_logit"].to_numpy())
