"""Agreement statistics against published reference values, edge cases, and synthetic annotators."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from prefaudit.analyzers.agreement import AgreementAnalyzer, agreement_metrics, clean_votes, position_bias
from prefaudit.analyzers.base import AuditContext
from prefaudit.analyzers.reliability import cohen_kappa, fleiss_kappa, krippendorff_alpha, percent_agreement
from prefaudit.data.preference_set import Annotations, PreferenceSet

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 coders x 12 units, missing values.
KRIPPENDORFF = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
])
# Wikipedia, "Fleiss' kappa": 10 subjects, 14 raters, 5 categories.
FLEISS = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                   [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
COHEN = np.array([[0, 4, 1], [0, 8, 0], [0, 1, 5]])


@pytest.mark.parametrize("level, expected", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849),
                                             ("ratio", 0.797)])
def test_krippendorff_reference(level: str, expected: float) -> None:
    assert round(krippendorff_alpha(KRIPPENDORFF, level), 3) == expected
    # the count-table form the analyzer uses gives the same value
    domain = np.arange(1, 6, dtype=float)
    counts = np.stack([(v == KRIPPENDORFF).sum(axis=0) for v in domain], axis=1)
    assert krippendorff_alpha(value_counts=counts, value_domain=domain, level=level) == pytest.approx(
        krippendorff_alpha(KRIPPENDORFF, level), abs=1e-12)


def test_fleiss_reference_and_statsmodels() -> None:
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

    assert round(fleiss_kappa(FLEISS), 3) == 0.210
    assert fleiss_kappa(FLEISS) == pytest.approx(sm_fleiss(FLEISS), abs=1e-12)
    # percent agreement is Fleiss' P-bar
    n = FLEISS.sum(axis=1)
    assert percent_agreement(FLEISS) == pytest.approx(np.mean(((FLEISS ** 2).sum(1) - n) / (n * (n - 1))))


def test_fleiss_variable_raters_matches_definition() -> None:
    # rows with 2 and 3 raters: P-bar over each row's own rater pairs, category shares pooled over ratings
    t = np.array([[2, 0, 0], [1, 1, 0], [0, 2, 1], [3, 0, 0], [1, 0, 0]])  # the last row (1 rating) is left out
    used = t[:4]
    p_i = np.array([1.0, 0.0, 1 / 3, 1.0])
    p_j = used.sum(0) / used.sum()
    expected = (p_i.mean() - (p_j ** 2).sum()) / (1 - (p_j ** 2).sum())
    assert fleiss_kappa(t) == pytest.approx(expected)


def test_cohen_reference_statsmodels_sklearn() -> None:
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import cohens_kappa

    assert round(cohen_kappa(COHEN), 4) == 0.4842
    assert cohen_kappa(COHEN) == pytest.approx(cohens_kappa(COHEN).kappa, abs=1e-12)
    r1 = np.repeat(np.arange(3), COHEN.sum(axis=1))
    r2 = np.concatenate([np.repeat(np.arange(3), row) for row in COHEN])
    assert cohen_kappa(COHEN) == pytest.approx(cohen_kappa_score(r1, r2), abs=1e-12)


def _set(votes: list[tuple[str, str, str | None]]) -> PreferenceSet:
    ann = Annotations(pl.DataFrame(votes, schema={"pair_id": pl.Utf8, "annotator_id": pl.Utf8, "label": pl.Utf8},
                                   orient="row"))
    ids = sorted({v[0] for v in votes})
    df = pl.DataFrame({"pair_id": ids, "prompt": [f"p{i}" for i in ids], "chosen": ["x"] * len(ids),
                       "rejected": ["y"] * len(ids)})
    return PreferenceSet(df, annotations=ann)


def test_no_annotations_skips() -> None:
    ps = PreferenceSet(pl.DataFrame({"pair_id": ["1"], "prompt": ["p"], "chosen": ["a"], "rejected": ["b"]}))
    r = AgreementAnalyzer(n_boot=50).run(ps)
    assert r.skipped and "annotations" in r.skipped


def test_all_agree_alpha_undefined_not_nan() -> None:
    ps = _set([(str(i), w, "a") for i in range(6) for w in ("u", "v", "w")])
    r = AgreementAnalyzer(n_boot=50).run(ps)
    alpha = r.metrics["agreement.krippendorff_alpha"]
    assert alpha.value is None and "no disagreement" in alpha.note
    assert r.metrics["agreement.fleiss_kappa"].value is None
    assert r.metrics["agreement.percent_agreement"].value == 1.0
    for m in r.metrics.values():
        assert m.value is None or math.isfinite(m.value)
        assert m.to_dict()["value"] is None or math.isfinite(m.to_dict()["value"])
    assert r.pairs["agreement_score"].to_list() == [1.0] * 6
    assert not r.pairs["agreement_flag"].any()


def test_single_ratings_missing_labels_and_one_item_annotator() -> None:
    votes = [("1", "u", "a"), ("2", "u", "b"), ("3", "v", None), ("3", "u", "tie")]
    r = AgreementAnalyzer(n_boot=50).run(_set(votes))
    assert r.config["votes_dropped"] == 1
    alpha = r.metrics["agreement.krippendorff_alpha"]
    assert alpha.value is None and alpha.note == "no item has two or more ratings"
    assert r.metrics["agreement.percent_agreement"].value is None
    assert r.metrics["agreement.n_annotators"].value == 1  # v's only vote had no label
    # an annotator with a single item, items with one rating, a split vote
    votes = [("1", "u", "a"), ("1", "v", "b"), ("2", "u", "a"), ("2", "v", "a"), ("3", "u", "b"),
             ("4", "w", "a")]
    r = AgreementAnalyzer(n_boot=50).run(_set(votes))
    ann = r.details["annotators"]
    assert ann.filter(pl.col("annotator_id") == "w")["n_labeled"].item() == 1
    assert ann.filter(pl.col("annotator_id") == "w")["n_shared"].item() == 0
    assert ann.filter(pl.col("annotator_id") == "w")["ds_accuracy"].item() is None  # not identifiable
    assert r.metrics["agreement.percent_agreement"].value == pytest.approx(0.5)
    pairs = {p: (s, f) for p, s, f in r.pairs.select("pair_id", "agreement_score", "agreement_flag").iter_rows()}
    assert pairs["1"] == (0.5, True) and pairs["2"] == (1.0, False) and pairs["4"] == (1.0, False)
    kap = r.details["cohen_kappa"]
    assert kap.height == 1 and kap["n_shared"].item() == 2


def test_bootstrap_cis_bracket_values() -> None:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(80):
        truth = rng.choice(["a", "b"])
        for w in ("u", "v", "w"):
            rows.append((str(i), w, truth if rng.random() < 0.8 else ("b" if truth == "a" else "a")))
    votes, _ = clean_votes(_set(rows).annotations.df)
    m = agreement_metrics(votes, n_boot=200, seed=1)
    for name in ("agreement.krippendorff_alpha", "agreement.fleiss_kappa", "agreement.percent_agreement",
                 "agreement.krippendorff_alpha_ordinal", "agreement.krippendorff_alpha_interval"):
        lo, hi = m[name].ci
        assert lo < m[name].value < hi and m[name].n == 80
    # same seed, same CI
    assert agreement_metrics(votes, n_boot=200, seed=1)["agreement.fleiss_kappa"].ci == m["agreement.fleiss_kappa"].ci


def test_position_bias_counts_first_shown() -> None:
    df = pl.DataFrame({"pair_id": ["1", "1", "2", "2", "3"], "annotator_id": ["u", "v", "u", "v", "u"],
                       "label": ["a", "b", "b", "tie", "b"], "shown_order": ["ab", "ab", "ba", "ba", "ab"]})
    votes, _ = clean_votes(Annotations(df).df)
    m = position_bias(votes, n_boot=100)
    # first-shown picks: (1,u) a/ab yes, (1,v) b/ab no, (2,u) b/ba yes, (3,u) b/ab no; the tie is left out
    assert m.value == pytest.approx(0.5) and m.n == 4
    assert position_bias(votes.drop("shown_order")).value is None


@pytest.fixture(scope="module")
def synthetic_result():
    from prefaudit.synth import make

    data = make(annotator_accuracies=[0.95, 0.9, 0.85, 0.6])
    return data, AgreementAnalyzer(n_boot=100).run(data.pairs, AuditContext(seed=0))


def test_synthetic_annotator_accuracies_and_flag(synthetic_result) -> None:
    data, r = synthetic_result
    ann = r.details["annotators"]
    for aid, acc, flag in ann.select("annotator_id", "ds_accuracy", "flag").iter_rows():
        assert abs(acc - data.annotator_truth[aid]) <= 0.05, aid
        assert flag == (data.annotator_truth[aid] == 0.6), aid
    assert r.metrics["agreement.flagged_annotators"].value == 1
    assert r.metrics["agreement.n_annotators"].value == 4
    # per-pair: split votes are flagged exactly where no label has a strict majority
    cons = data.pairs.annotations.consensus()
    top = cons.select(pl.max_horizontal("votes_a", "votes_b", "votes_tie")).to_series()
    n_split = int((top <= 2).sum())
    assert int(r.pairs["agreement_flag"].sum()) == n_split


def test_plot_and_repr(synthetic_result) -> None:
    from matplotlib.figure import Figure

    _, r = synthetic_result
    assert isinstance(r.plot(), Figure)
    assert "agreement.krippendorff_alpha" in r._repr_html_()
