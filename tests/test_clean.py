"""Cleaning rules on a planted per-pair table: reasons, actions, accounting, debiasing, TRL output, review."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from prefaudit.analyzers.base import Metric
from prefaudit.clean import apply_policy, debias_resample, debias_weights, load_policy
from prefaudit.data.preference_set import Annotations, PreferenceSet
from prefaudit.errors import ConfigError

# pair:      0     1      2      3      4      5       6      7      8     9
TIE = [False, False, False, False, False, True, False, False, False, False]
EMPTY = [False, True, False, False, False, False, False, False, False, False]
IDENT = [False, False, True, False, False, False, False, False, False, False]
DUP = [False, False, False, True, False, False, False, False, False, False]     # copy of pair 0
CONTRA = [False, False, False, False, False, False, True, True, False, False]
NOISE = [0.9, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9, 0.1, 0.95, 0.45]
NOISE_FLAG = [False, False, False, False, True, False, False, True, False, False]
AGREE = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.67]


def _data(n: int = 10) -> PreferenceSet:
    return PreferenceSet(pl.DataFrame({
        "pair_id": [f"p{i}" for i in range(n)], "prompt": [f"q{i}" for i in range(n)],
        "chosen": [f"chosen answer {i}" for i in range(n)], "rejected": [f"rej {i}" for i in range(n)],
        "tie": TIE[:n] if n == 10 else [False] * n}))


def _table() -> pl.DataFrame:
    return pl.DataFrame({
        "pair_id": [f"p{i}" for i in range(10)], "hygiene_empty_response": EMPTY, "hygiene_identical_pair": IDENT,
        "hygiene_normalized_duplicate": DUP, "hygiene_exact_duplicate": [False] * 10,
        "hygiene_contradiction": CONTRA, "noise_score": NOISE, "noise_flag": NOISE_FLAG, "agreement_score": AGREE})


def _reasons(res) -> dict[str, list[str]]:
    return dict(zip(res.manifest["pair_id"].to_list(), res.manifest["reasons"].to_list(), strict=True))


def test_default_policy_reasons_and_accounting() -> None:
    res = apply_policy(_data(), _table(), load_policy(None))
    assert _reasons(res) == {
        "p1": ["empty_response"], "p2": ["identical_pair"], "p3": ["duplicate"], "p4": ["noise"],
        "p5": ["tie"], "p6": ["contradiction"], "p7": ["contradiction", "noise"], "p8": ["low_agreement"],
        "p9": ["noise"]}  # p9: noise_score 0.45 < 0.5
    assert set(res.manifest["action"]) == {"remove"}
    assert res.data.pair_ids == ["p0"]
    assert res.counts["kept"] + res.counts["removed"] == res.counts["pairs_in"] == 10
    assert res.counts["by_reason"]["contradiction"] == 2 and res.counts["by_reason"]["noise"] == 3


def test_noise_budget_takes_the_lowest_scores() -> None:
    """Budget 0.9 x estimated rate 0.25 x 10 pairs = 2 pairs: the two lowest noise scores (p7, p4)."""
    rate = {"noise.estimated_rate": Metric(0.25, (0.2, 0.3), 10)}
    res = apply_policy(_data(), _table(), load_policy(None), metrics=rate)
    assert res.ids_with_reason("noise") == ["p4", "p7"]
    res = apply_policy(_data(), _table(), load_policy({"noise": {"budget": 0.0}}), metrics=rate)
    assert res.ids_with_reason("noise") == []
    # without a defined rate the threshold rule applies (noise_score < 0.5)
    res = apply_policy(_data(), _table(), load_policy(None), metrics={"noise.estimated_rate": Metric(None)})
    assert res.ids_with_reason("noise") == ["p4", "p7", "p9"]


def test_rules_can_be_turned_off_and_thresholds_move() -> None:
    pol = load_policy({"noise": {"select": "threshold", "max_score": 0.15, "use_flag": False}, "agreement": {"action": "keep"},
                       "ties": {"action": "keep"}, "duplicates": {"normalized": False}})
    res = apply_policy(_data(), _table(), pol)
    r = _reasons(res)
    assert r["p7"] == ["contradiction", "noise"] and "p4" not in r and "p8" not in r and "p5" not in r
    assert "p3" not in r  # only normalised duplicate, exact-only policy keeps it
    assert len(res.data) + res.counts["removed"] == 10


def test_relabel_by_consensus_when_annotations_support_it() -> None:
    data = _data()
    votes = pl.DataFrame({  # p4, p7: one of three votes for the rejected side (b); p9: no vote for b
        "pair_id": ["p4", "p4", "p4", "p9", "p9", "p7", "p7", "p7"], "annotator_id": ["x", "y", "z"] * 2 + ["y", "z"],
        "label": ["a", "a", "b", "a", "a", "a", "a", "b"]})
    data = PreferenceSet(data.df.with_columns(pl.lit("a").alias("chosen_side")), annotations=Annotations(votes))
    res = apply_policy(data, _table(), load_policy({"noise": {"action": "relabel", "select": "threshold"}}))
    man = {r["pair_id"]: r for r in res.manifest.iter_rows(named=True)}
    assert man["p4"]["action"] == "relabel" and man["p4"]["reasons"] == ["noise"]
    assert man["p9"]["action"] == "remove"  # no annotation supports the other side
    assert man["p1"]["action"] == "remove"  # not suspected of noise: other rules are unaffected
    # p7 could be relabeled but is in a contradiction: removed, and both reasons are listed
    assert man["p7"]["action"] == "remove" and man["p7"]["reasons"] == ["contradiction", "noise"]
    row = res.data.df.filter(pl.col("pair_id") == "p4").row(0, named=True)
    assert (row["chosen"], row["rejected"], row["chosen_side"]) == ("rej 4", "chosen answer 4", "b")
    assert len(res.data) + res.counts["removed"] == 10 and res.counts["relabeled"] == 1


def test_length_resample_and_weights() -> None:
    rng = np.random.default_rng(0)
    longer = (rng.random(1000) < 0.8).astype(np.int64)
    longer[:10] = -1
    keep = np.ones(1000, dtype=bool)
    drop = debias_resample(longer, keep, 0.02, seed=1)
    kept = np.setdiff1d(np.arange(1000), drop)
    rate = (longer[kept] == 1).sum() / (longer[kept] >= 0).sum()
    assert abs(rate - 0.5) <= 0.02 + 1e-9 and (longer[drop] == 1).all()
    # already balanced: nothing dropped
    assert debias_resample(np.array([0, 1, 0, 1]), np.ones(4, dtype=bool), 0.02, 0).size == 0
    w = debias_weights(longer)
    assert np.average(longer[longer >= 0] == 1, weights=w[longer >= 0]) == pytest.approx(0.5)
    assert w[longer >= 0].mean() == pytest.approx(1.0)


def test_length_modes_through_policy(tmp_path: Path) -> None:
    n = 200
    chosen = ["long " * 20 if i % 5 else "s" for i in range(n)]  # 80% chosen longer
    data = PreferenceSet(pl.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "prompt": ["q"] * n,
                                       "chosen": chosen, "rejected": ["mid text"] * n}))
    table = pl.DataFrame({"pair_id": data.pair_ids})
    res = apply_policy(data, table, load_policy({"length": {"mode": "resample", "tolerance": 0.05}}), seed=3)
    out = res.data.df
    rate = (out["chosen"].str.len_chars() > out["rejected"].str.len_chars()).mean()
    assert abs(rate - 0.5) <= 0.05 and set(res.counts["by_reason"]) == {"length_debias"}
    assert len(res.data) + res.counts["removed"] == n
    res = apply_policy(data, table, load_policy({"length": {"mode": "weights"}}))
    assert res.counts["removed"] == 0 and "weight" in res.trl_frame().columns
    res.write(tmp_path / "w.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "w.jsonl").read_text().splitlines()]
    assert set(rows[0]) == {"prompt", "chosen", "rejected", "weight"}
    w = np.array([r["weight"] for r in rows])
    longer = np.array([len(r["chosen"]) > len(r["rejected"]) for r in rows])
    assert np.average(longer, weights=w) == pytest.approx(0.5)


def test_outputs_trl_manifest_review(tmp_path: Path) -> None:
    res = apply_policy(_data(), _table(), load_policy(None))
    res.write(tmp_path / "clean.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "clean.jsonl").read_text().splitlines()]
    assert rows == [{"prompt": "q0", "chosen": "chosen answer 0", "rejected": "rej 0"}]
    res.write_manifest(tmp_path / "m.jsonl")
    man = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert len(man) == 9 and {"pair_id", "action", "reasons"} <= set(man[0])
    review = res.review_frame()
    assert review.columns == ["pair_id", "prompt", "response_a", "response_b", "label", "annotator_id"]
    # label problems (noise, low agreement, contradictions), not ties/duplicates/empties
    assert sorted(review["pair_id"]) == ["p4", "p6", "p7", "p8", "p9"]
    with pytest.raises(ConfigError):
        res.write_review(tmp_path / "review.txt")


@pytest.mark.parametrize("policy, fragment", [
    ({"noise": {"action": "delete"}}, "must be one of"),
    ({"noise": {"max_score": "low"}}, "must be a number"),
    ({"spelling": {"action": "remove"}}, "unknown policy section"),
    ({"noise": {"threshold": 0.5}}, "unknown key"),
    ({"noise": {"select": "top"}}, "select must be one of"),
    ({"length": {"mode": "resample", "tolerance": 0.7}}, "tolerance"),
])
def test_bad_policies(policy: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_policy(policy)


def test_policy_file_errors(tmp_path: Path) -> None:
    p = tmp_path / "clean.toml"
    p.write_text("[noise\naction = 'remove'")
    with pytest.raises(ConfigError, match="malformed TOML"):
        load_policy(p)
    with pytest.raises(ConfigError, match="not found"):
        load_policy(tmp_path / "absent.toml")
    assert load_policy(None)["noise"]["action"] == "remove"


def test_large_sets_fit_the_noise_model_on_a_sample_and_score_every_pair() -> None:
    """Above max_model_pairs the noise model is fitted on a sample; every pair still gets its score, the
    accounting holds, and the removals still find the injected flips."""
    from prefaudit.clean import clean
    from prefaudit.synth import make

    s = make(flip_rate=0.3, seed=0)
    res = clean(s.pairs, embeddings=False, max_model_pairs=800)
    noise = res.audit.results["noise"]
    assert noise.details["model"]["fit_pairs"] == 800
    assert res.audit.pairs["noise_score"].null_count() == int(s.pairs.df["tie"].sum())  # ties have no score
    assert res.counts["kept"] + res.counts["removed"] == len(s.pairs)
    removed = set(res.manifest.filter(pl.col("reasons").list.contains("noise"))["pair_id"].to_list())
    flipped = set(s.flipped_ids)
    precision = len(removed & flipped) / max(len(removed), 1)
    recall = len(removed & flipped) / len(flipped)
    # a model fitted on 800 pairs without embeddings is weaker than the full cross-fit (0.75 / 0.75 here),
    # yet far above chance (precision 0.3); measured 0.58 / 0.69
    assert precision > 0.5 and recall > 0.6
