"""Agreement on the real Tülu-1 human evaluation, checked against an independent computation from the raw
CSV; the canonical A/B order is load-bearing (agreement on the order as shown differs)."""

from __future__ import annotations

import krippendorff
import polars as pl
import pytest

from prefaudit.analyzers.agreement import AgreementAnalyzer, as_shown, clean_votes, position_bias

pytestmark = pytest.mark.realdata

SCORE = {"a-is-better": 2, "a-is-slightly-better": 1, "tie": 0, "b-is-slightly-better": -1, "b-is-better": -2}


@pytest.fixture(scope="module")
def tulu(tulu_annotations_path):
    import prefaudit

    return prefaudit.load(tulu_annotations_path, format="tulu")


@pytest.fixture(scope="module")
def result(tulu):
    return AgreementAnalyzer(n_boot=300).run(tulu)


def _raw_alpha(path, canonical: bool, level: str) -> float:
    """Alpha straight from the CSV: latest rating per (comparison, evaluator), evaluators x comparisons."""
    d = pl.read_csv(path, infer_schema_length=0).sort("timestamp") \
        .unique(["instance_index", "evaluator"], keep="last")
    s = d["preference"].replace_strict(SCORE, return_dtype=pl.Float64)
    if canonical:  # the alphabetically smaller model is "a"
        s = pl.select(pl.when(d["model_a"] > d["model_b"]).then(-s).otherwise(s)).to_series()
    if level == "nominal":
        s = s.sign()
    d = d.with_columns(s.alias("s"))
    wide = d.pivot(on="instance_index", index="evaluator", values="s")
    return krippendorff.alpha(wide.drop("evaluator").to_numpy().astype(float), level_of_measurement=level)


def test_tulu_agreement_metrics_with_cis(result, tulu_annotations_path) -> None:
    m = result.metrics
    for name in ("agreement.krippendorff_alpha", "agreement.krippendorff_alpha_ordinal",
                 "agreement.krippendorff_alpha_interval", "agreement.fleiss_kappa", "agreement.percent_agreement"):
        assert m[name].ci is not None and m[name].ci[0] < m[name].value < m[name].ci[1], name
        assert m[name].n == 121  # comparisons rated at least twice (127, less 6 repeated by one evaluator)
    assert m["agreement.krippendorff_alpha"].value == pytest.approx(
        _raw_alpha(tulu_annotations_path, True, "nominal"), abs=1e-9)
    assert m["agreement.krippendorff_alpha_interval"].value == pytest.approx(
        _raw_alpha(tulu_annotations_path, True, "interval"), abs=1e-9)
    assert 0.2 < m["agreement.krippendorff_alpha"].value < 0.5  # "realistic, unfiltered disagreement"
    assert m["agreement.n_annotators"].value == 16


def test_tulu_canonical_order_is_load_bearing(tulu, result, tulu_annotations_path) -> None:
    votes, _ = clean_votes(as_shown(tulu.annotations).df)
    shown = AgreementAnalyzer(n_boot=300).run(type(tulu)(tulu.df, annotations=as_shown(tulu.annotations)))
    canonical = result.metrics["agreement.krippendorff_alpha"]
    as_seen = shown.metrics["agreement.krippendorff_alpha"]
    assert as_seen.value == pytest.approx(_raw_alpha(tulu_annotations_path, False, "nominal"), abs=1e-9)
    # agreement measured on the order as shown is much lower, outside the canonical CI
    assert as_seen.value < canonical.ci[0]
    assert canonical.value - as_seen.value > 0.1
    assert votes.height == clean_votes(tulu.annotations.df)[0].height


def test_tulu_per_evaluator_table_and_position_bias(tulu, result) -> None:
    ann = result.details["annotators"]
    assert ann.height == 16
    assert ann["n_labeled"].sum() == clean_votes(tulu.annotations.df)[0].height
    assert {"annotator_id", "n_labeled", "loo_agreement", "ds_accuracy", "ds_ci_lo", "ds_ci_hi", "first_shown_rate",
            "flag"} <= set(ann.columns)
    shared = ann.filter(pl.col("n_shared") > 0)
    assert shared["ds_accuracy"].is_not_null().all()
    assert (shared["ds_ci_lo"] <= shared["ds_accuracy"]).all() and (shared["ds_accuracy"] <= shared["ds_ci_hi"]).all()
    pb = result.metrics["agreement.position_bias"]
    # independent count: non-tie ratings whose preferred side is the one shown first (model_a in the sheet)
    votes = tulu.annotations.df
    nt = votes.filter(pl.col("label") != "tie")
    first = ((nt["label"] == "a") == (nt["shown_order"] == "ab")).sum()
    assert pb.value == pytest.approx(first / nt.height) and pb.n == nt.height
    assert pb.ci[0] < pb.value < pb.ci[1]
    assert position_bias(votes).value == pytest.approx(pb.value)
    kap = result.details["cohen_kappa"]
    assert kap.height > 5 and kap["n_shared"].min() >= 1
    assert result.pairs.height == len(tulu)
