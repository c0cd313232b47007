"""The vectorised Dawid–Skene EM against crowd-kit's DawidSkene (the reference implementation)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from prefaudit.analyzers.dawid_skene import dawid_skene


def _crowdkit(votes: pl.DataFrame):
    crowdkit = pytest.importorskip("crowdkit.aggregation")
    return crowdkit.DawidSkene(n_iter=100).fit(
        votes.select(pl.col("pair_id").alias("task"), pl.col("annotator_id").alias("worker"), "label").to_pandas())


def _votes(seed: int, n: int = 250) -> pl.DataFrame:
    """Three labels, unequal accuracies, a biased annotator, missing votes (random subsets of raters)."""
    rng = np.random.default_rng(seed)
    truth = rng.choice(["a", "b", "tie"], size=n, p=[0.45, 0.4, 0.15])
    rows = []
    for i, t in enumerate(truth):
        for w, acc in (("w1", 0.9), ("w2", 0.75), ("w3", 0.65), ("w4", 0.55), ("w5", 0.8)):
            if rng.random() < 0.3:
                continue
            if w == "w4" and rng.random() < 0.3:
                rows.append((str(i), w, "a"))  # says "a" whatever the item
            else:
                rows.append((str(i), w, t if rng.random() < acc else rng.choice([x for x in ("a", "b", "tie") if x != t])))
    return pl.DataFrame(rows, schema={"pair_id": pl.Utf8, "annotator_id": pl.Utf8, "label": pl.Utf8}, orient="row")


@pytest.mark.parametrize("seed", [0])
def test_matches_crowdkit(seed: int) -> None:
    votes = _votes(seed)
    fit = dawid_skene(votes)
    ref = _crowdkit(votes)
    probas = ref.probas_.reindex(index=fit.posteriors["pair_id"].to_list(), columns=list(fit.labels)).to_numpy()
    assert np.abs(probas - fit.posterior_matrix()).max() < 1e-8
    for (worker, given), row in ref.errors_.iterrows():
        m = fit.confusion_matrix(worker)
        for true, p in row.items():
            assert m[fit.labels.index(true), fit.labels.index(given)] == pytest.approx(p, abs=1e-8)
    for lab, p in ref.priors_.items():
        assert fit.priors[lab] == pytest.approx(p, abs=1e-8)
    assert fit.posteriors["ds_label"].to_list() == ref.labels_.reindex(fit.posteriors["pair_id"].to_list()).tolist()


def test_accuracy_is_posterior_expected_agreement() -> None:
    votes = _votes(3)
    fit = dawid_skene(votes)
    post = fit.posteriors
    for aid, acc, lo, hi in fit.accuracies.select("annotator_id", "accuracy", "ci_lo", "ci_hi").iter_rows():
        mine = votes.filter(pl.col("annotator_id") == aid).join(post, on="pair_id")
        expected = np.mean([row[f"p_{row['label']}"] for row in mine.iter_rows(named=True)])
        assert acc == pytest.approx(expected) and lo < acc < hi
    # confusion matrices are row-stochastic (true label -> given label)
    for aid in fit.accuracies["annotator_id"]:
        assert np.allclose(fit.confusion_matrix(aid).sum(axis=1), 1.0)


def test_degenerate_inputs() -> None:
    same = pl.DataFrame({"pair_id": ["1", "1", "2"], "annotator_id": ["u", "v", "u"], "label": ["b", "b", "b"]})
    fit = dawid_skene(same)
    assert np.allclose(fit.posteriors["p_b"].to_numpy(), 1.0, atol=1e-6)
    assert not np.isnan(fit.posterior_matrix()).any()
    with pytest.raises(ValueError):
        dawid_skene(same.filter(pl.col("pair_id") == "none"))
    with pytest.raises(ValueError):
        dawid_skene(same.with_columns(pl.lit("maybe").alias("label")), labels=("a", "b"))
