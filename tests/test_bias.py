"""Length/verbosity bias and surface shortcuts: synthetic ground truth, peer libraries, real data."""

from __future__ import annotations

import glob

import numpy as np
import polars as pl
import pytest

from prefaudit.analyzers.base import AuditContext
from prefaudit.analyzers.bias import (
    BiasAnalyzer,
    chosen_longer_rate,
    feature_effects,
    log_ratio,
    log_ratio_logit,
    shortcut_model,
    symmetric_auroc,
    win_rate_by_bins,
)
from prefaudit.analyzers.surface import surface_features
from prefaudit.data.preference_set import PreferenceSet


def _set(chosen: list[str], rejected: list[str], **meta: list) -> PreferenceSet:
    n = len(chosen)
    return PreferenceSet(pl.DataFrame({"pair_id": [f"p{i}" for i in range(n)], "prompt": [f"q{i}" for i in range(n)],
                                       "chosen": chosen, "rejected": rejected, **meta}))


# ---- synthetic acceptance (generator defaults apart from the named knob) -----------------------------
@pytest.fixture(scope="module")
def synth_runs():
    from prefaudit import synth

    unbiased = synth.make(seed=0)
    biased = synth.make(seed=0, length_bias=0.8)
    return unbiased, BiasAnalyzer().run(unbiased.pairs), biased, BiasAnalyzer().run(biased.pairs)


def test_synthetic_length_bias_detected_with_right_sign(synth_runs) -> None:
    _, _, biased, res = synth_runs
    coef = res.metrics["length.log_ratio_coef"]
    assert coef.value > 0 and coef.ci[0] > 0, coef
    assert res.metrics["length.log_ratio_p"].value < 0.001
    rate = res.metrics["length.chosen_longer_rate"]
    assert rate.ci[0] > 0.5
    # the truth: the chosen-longer rate recorded by the generator
    truth = biased.truth["chosen_longer"].mean()
    assert rate.value == pytest.approx(truth, abs=1e-9)


def test_synthetic_unbiased_coefficient_ci_contains_zero(synth_runs) -> None:
    _, res, _, _ = synth_runs
    coef = res.metrics["length.log_ratio_coef"]
    assert coef.ci[0] < 0 < coef.ci[1], coef
    rate = res.metrics["length.chosen_longer_rate"]
    assert rate.ci[0] < 0.5 < rate.ci[1]


# ---- the pieces against independent computations ------------------------------------------------------
def test_log_ratio_logit_matches_direct_mle() -> None:
    """The swap-symmetric fit maximises sum log sigmoid(b x_i): check against scipy's optimiser."""
    from scipy.optimize import minimize_scalar

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.7, 400)
    chosen_is_x = rng.random(400) < 1 / (1 + np.exp(-0.8 * x))
    xs = np.where(chosen_is_x, x, -x)  # log ratio chosen/rejected
    coef, p = log_ratio_logit(xs)
    best = minimize_scalar(lambda b: np.sum(np.log1p(np.exp(-b * xs))), bounds=(-10, 10), method="bounded").x
    assert coef.value == pytest.approx(best, abs=1e-4)
    assert coef.ci[0] < 0.8 < coef.ci[1]
    # the clustered SE of the doubled data equals the robust SE of the one-row-per-pair model
    s = 1 / (1 + np.exp(-best * xs))
    h = np.sum(s * (1 - s) * xs ** 2)
    g = np.sum(((1 - s) * xs) ** 2)
    se = np.sqrt(g) / h
    half = (coef.ci[1] - coef.ci[0]) / 2
    assert half / 1.959964 == pytest.approx(se, rel=0.01)
    # swap symmetry: relabelling a and b (negating every x) flips the sign only
    flipped, _ = log_ratio_logit(-xs)
    assert flipped.value == pytest.approx(-coef.value, abs=1e-6)
    assert p.value < 1e-3


def test_log_ratio_logit_separation_is_undefined() -> None:
    coef, _ = log_ratio_logit(np.array([0.5, 1.0, 2.0]))
    assert coef.value is None and "separation" in coef.note


def test_chosen_longer_rate_and_bins() -> None:
    m = chosen_longer_rate(np.array([5, 10, 3, 4]), np.array([3, 12, 3, 1]))
    assert m.value == 0.5 and m.n == 4 and "1 pairs of equal length" in m.note
    x = log_ratio(np.array([10, 100, 10, 11, 1000]), np.array([100, 10, 10, 10, 10]))
    b = win_rate_by_bins(x)
    assert b["n"].sum() == 4  # the pair of equal length is left out
    assert b.filter(pl.col("bin") == "[1, inf)")["longer_chosen_rate"][0] == pytest.approx(2 / 3)


def test_surface_features_planted() -> None:
    t = ["I'm sorry, but I can't help with that.", "As an AI language model, I don't have opinions!",
         "# Title\n- a\n- b\n1. c\n```py\nx = 1\n```", "Thanks! Perhaps it might work? Please try.", "Plain text"]
    f = surface_features(t)
    assert f["refusal"].to_list() == [1, 0, 0, 0, 0]
    assert f["apology"].to_list() == [1, 0, 0, 0, 0]
    assert f["ai_boilerplate"].to_list()[1] >= 1 and f["ai_boilerplate"].to_list()[4] == 0
    assert f["headers"].to_list() == [0, 0, 1, 0, 0]
    assert f["list_items"].to_list() == [0, 0, 3, 0, 0]
    assert f["code_blocks"].to_list() == [0, 0, 1, 0, 0]
    assert f["exclamation"].to_list() == [0, 1, 0, 1, 0]
    assert f["politeness"].to_list() == [0, 0, 0, 2, 0]
    assert f["hedge"].to_list() == [0, 0, 0, 2, 0]
    assert f["words"].to_list() == [8, 9, 13, 7, 2]


def test_feature_effects_planted() -> None:
    """Refusals are planted on the chosen side in 40 of 50 differing pairs: rate 0.8, direction chosen."""
    chosen = ["I can't help with that, sorry to say."] * 40 + ["Here you go."] * 10 + ["Plain."] * 50
    rejected = ["Here you go."] * 40 + ["I cannot help with that request."] * 10 + ["Plain."] * 50
    fc, fr = surface_features(chosen), surface_features(rejected)
    eff = feature_effects(fc, fr)
    row = eff.filter(pl.col("feature") == "refusal").row(0, named=True)
    assert row["n_differ"] == 50 and row["chosen_rate"] == pytest.approx(0.8)
    assert row["direction"] == "chosen" and row["ci_lo"] > 0.5
    assert eff.filter(pl.col("feature") == "headers")["n_differ"][0] == 0


def test_symmetric_auroc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    p = np.random.default_rng(3).random(200)
    p[:20], p[20:30], p[30:40] = 0.5, 0.75, 0.25  # exact ties, also between p_i and 1 - p_j
    assert symmetric_auroc(p) == pytest.approx(roc_auc_score(np.r_[np.ones(200), np.zeros(200)], np.r_[p, 1 - p]))


def test_shortcut_model_planted_and_null() -> None:
    rng = np.random.default_rng(0)
    n = 600
    x = rng.normal(size=(n, 3))
    # the recorded preference follows feature 0 (a planted shortcut)
    signal = x.copy()
    signal[:, 0] = np.abs(signal[:, 0]) * np.where(rng.random(n) < 0.9, 1, -1)
    _, auc, coefs = shortcut_model(signal, seed=0)
    assert auc.value > 0.75 and auc.ci[0] > 0.7 and coefs[0] > 0
    null = np.random.default_rng(1).normal(size=(2000, 3))  # no association at all
    _, null_auc, _ = shortcut_model(null, seed=0)
    assert abs(null_auc.value - 0.5) < 0.05


def test_analyzer_scores_flags_ties_and_breakdowns() -> None:
    rng = np.random.default_rng(1)
    n = 300
    short = [("ok " * int(k)).strip() + "." for k in rng.integers(2, 6, n)]
    long = [("this is a much longer answer " * int(k)).strip() + "." for k in rng.integers(3, 8, n)]
    longer_wins = rng.random(n) < 0.9
    chosen = [lo if w else s for lo, s, w in zip(long, short, longer_wins, strict=True)]
    rejected = [s if w else lo for lo, s, w in zip(long, short, longer_wins, strict=True)]
    tie = [i < 10 for i in range(n)]
    data = _set(chosen, rejected, tie=tie, source=["x" if i % 2 else "y" for i in range(n)])
    res = BiasAnalyzer().run(data, AuditContext(by=("source",)))
    m = res.metrics
    assert m["length.chosen_longer_rate"].n == n - 10  # ties left out
    assert m["shortcut.auroc"].value > 0.8
    p = res.pairs
    assert p.columns[:3] == ["pair_id", "bias_score", "bias_flag"] and p.height == n
    assert p["bias_surface_prob"][:10].is_null().all() and p["bias_score"][:10].to_list() == [1.0] * 10
    # pairs whose chosen side is the longer are the ones the shortcut predicts: flagged, low score
    sub = p[10:]
    lw = np.array(longer_wins[10:])
    assert sub.filter(pl.Series(lw))["bias_flag"].mean() > 0.9
    assert not sub.filter(pl.Series(~lw))["bias_flag"].any()
    assert (sub["bias_score"] >= 0).all() and (sub["bias_score"] <= 1).all()
    by = res.details["by_source"]
    assert set(by["source"].to_list()) == {"x", "y"} and by["n"].sum() == n - 10
    assert res.plot().axes


def test_tokens_with_a_tokenizer() -> None:
    class WordTok:  # any object with encode() works
        def encode(self, text: str) -> list[int]:
            return list(range(len(text.split())))

    data = _set(["a b c", "a", "a b"], ["a", "a b c d", "c d"])
    res = BiasAnalyzer().run(data, AuditContext(tokenizer=WordTok()))
    assert res.metrics["length.chosen_longer_rate_tokens"].value == pytest.approx(1 / 3)


# ---- real data ---------------------------------------------------------------------------------------
def test_hh_rlhf_chosen_is_shorter(hh_path) -> None:
    from prefaudit.data.load import load

    res = BiasAnalyzer().run(load(hh_path))
    rate = res.metrics["length.chosen_longer_rate"]
    assert rate.n == 2312
    assert rate.value == pytest.approx(0.44, abs=0.01) and rate.ci[1] < 0.5
    assert res.metrics["length.log_ratio_coef"].ci[1] < 0


def test_llmbar_adversarial_surface_misleads(llmbar_dir) -> None:
    from prefaudit.data.load import load

    sets = [load(p) for p in sorted(glob.glob(str(llmbar_dir / "LLMBar_Adversarial_*.json")))]
    df = pl.concat([s.df.select("pair_id", "prompt", "chosen", "rejected", "tie") for s in sets])
    res = BiasAnalyzer().run(PreferenceSet(df))
    rate = res.metrics["length.chosen_longer_rate"]
    assert rate.n == 319 and rate.value == pytest.approx(0.18, abs=0.01) and rate.ci[1] < 0.5
    eff = res.details["effects"]
    misleading = set(eff.filter(pl.col("direction") == "rejected")["feature"].to_list())
    assert {"chars", "words", "list_items"} <= misleading  # the worse output is longer and more listy
    assert res.metrics["shortcut.auroc"].ci[0] > 0.7


def test_auroc_normal_interval_agrees_with_bootstrap() -> None:
    """Above max_boot_pairs the CI comes from the U-statistic variance: it matches the bootstrap's width."""
    rng = np.random.default_rng(4)
    n = 3000
    x = rng.normal(size=(n, 2))
    x[:, 0] = np.abs(x[:, 0]) * np.where(rng.random(n) < 0.7, 1, -1)
    _, boot, _ = shortcut_model(x, seed=0, n_boot=1000)
    _, normal, _ = shortcut_model(x, seed=0, max_boot_pairs=100)
    assert boot.value == normal.value and "DeLong" in normal.method and "bootstrap" in boot.method
    w_boot, w_norm = boot.ci[1] - boot.ci[0], normal.ci[1] - normal.ci[0]
    assert w_norm == pytest.approx(w_boot, rel=0.15)
    assert normal.ci[0] < normal.value < normal.ci[1]


def test_log_ratio_logit_matches_statsmodels_clustered_fit() -> None:
    """Coefficient, CI and p-value equal statsmodels' Logit on the doubled rows with SEs clustered by pair."""
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    for n, slope in ((60, 0.3), (2000, -0.5)):
        x = rng.normal(0, 0.6, n)
        xs = np.where(rng.random(n) < 1 / (1 + np.exp(-slope * x)), x, -x)
        fit = sm.Logit(np.r_[np.ones(n), np.zeros(n)], np.r_[xs, -xs][:, None]).fit(
            disp=0, cov_type="cluster", cov_kwds={"groups": np.r_[np.arange(n), np.arange(n)]})
        coef, p = log_ratio_logit(xs)
        assert coef.value == pytest.approx(float(fit.params[0]), abs=1e-8)
        assert coef.ci == pytest.approx(tuple(np.asarray(fit.conf_int())[0]), abs=1e-8)
        assert p.value == pytest.approx(float(fit.pvalues[0]), rel=1e-6)
