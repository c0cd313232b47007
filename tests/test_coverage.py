"""Coverage: clusters, OOD target prompts and gap clusters (synthetic ground truth and real prompts),
the pieces against brute-force references, and the embedding cache on a second audit."""

from __future__ import annotations

import glob

import numpy as np
import polars as pl
import pytest

from prefaudit.analyzers.base import AuditContext
from prefaudit.analyzers.coverage import (
    CoverageAnalyzer,
    choose_k,
    cluster_terms,
    gap_mask,
    knn_cosine,
    knn_distance,
    ood_model,
    quantile_interval,
)
from prefaudit.data.preference_set import PreferenceSet


@pytest.fixture(scope="module")
def embedder():
    from prefaudit.embed import Embedder

    return Embedder()


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# ---- synthetic acceptance: generator defaults (the withheld topic is astronomy) ------------------------
@pytest.fixture(scope="module")
def synth_run(embedder):
    from prefaudit import synth

    s = synth.make(seed=0)
    res = CoverageAnalyzer().run(s.pairs, AuditContext(embedder=embedder, target=s.target))
    return s, res


def test_withheld_topic_is_a_gap_cluster_and_ood(synth_run) -> None:
    s, res = synth_run
    withheld = s.target["withheld"].to_numpy()
    assert withheld.sum() >= 50 and (~withheld).sum() >= 200
    t = res.details["target"]
    assert t.height == s.target.height and t.columns == ["prompt", "ood_score", "ood_flag", "cluster"]
    ood = t["ood_flag"].to_numpy()
    assert ood[withheld].mean() >= 0.9
    assert ood[~withheld].mean() <= 0.1
    # the withheld topic is reported as a gap cluster: gap clusters hold (nearly) all its target
    # prompts, are made of it, and show it among their examples
    gaps = res.details["gaps"]
    assert gaps.height >= 1
    in_gap = t["cluster"].is_in(gaps["cluster"].implode()).to_numpy()
    assert in_gap[withheld].mean() >= 0.9
    assert in_gap[~withheld].mean() <= 0.1
    topics = s.target["topic"].to_numpy()
    main_gap = int(gaps["cluster"][0])
    members = topics[t["cluster"].to_numpy() == main_gap]
    assert (members == s.withheld_topics[0]).mean() >= 0.9
    examples = gaps["examples"][0].to_list()
    assert examples and all(e in set(s.target.filter(pl.col("withheld"))["prompt"].to_list()) for e in examples)
    m = res.metrics
    assert m["coverage.target_gap_share"].ci[0] <= withheld.mean() <= m["coverage.target_gap_share"].ci[1] + 0.05
    assert m["coverage.n_clusters"].value == res.details["clusters"].height >= 2


def test_clusters_follow_topics_and_are_named(synth_run) -> None:
    s, res = synth_run
    cl = res.details["clusters"]
    assert int(cl["n_train"].sum()) == len(s.pairs)
    assert cl["share_train"].sum() == pytest.approx(1.0)
    assert cl["share_target"].sum() == pytest.approx(1.0)
    pairs = res.pairs.join(s.truth.select("pair_id", "topic"), on="pair_id")
    # each cluster is dominated by one topic (purity), checked against the generator's topics
    purity = pairs.group_by("coverage_cluster").agg(
        (pl.col("topic").value_counts(sort=True).first().struct.field("count") / pl.len()).alias("p"),
        pl.len())
    weighted = float((purity["p"] * purity["len"]).sum() / purity["len"].sum())
    assert weighted >= 0.8
    names = dict(zip(cl["cluster"].to_list(), cl["name"].to_list(), strict=True))
    gap_name = names[int(res.details["gaps"]["cluster"][0])]
    assert any(w in gap_name for w in ("sky", "telescope", "star", "planet", "stargazing", "moon", "night"))
    # per-pair table: one row per pair, score/flag for off-target pairs
    p = res.pairs
    assert p.columns[:3] == ["pair_id", "coverage_score", "coverage_flag"] and p.height == len(s.pairs)
    assert p["coverage_score"].min() >= 0 and p["coverage_score"].max() <= 1
    mp = res.details["map"]
    assert mp.height == cl.height and {"x", "y", "gap", "name"} <= set(mp.columns)
    assert res.plot().axes


# ---- real prompts: hh-rlhf training prompts vs held-out hh prompts + LLMBar instructions --------------
def test_real_prompts_hh_vs_llmbar_separate(embedder, hh_path, llmbar_dir) -> None:
    from prefaudit.data.load import load

    hh = load(hh_path).df.sample(fraction=1.0, shuffle=True, seed=0)
    train = PreferenceSet(hh.head(800))
    held = hh.slice(800, 150)["prompt"]
    lb = pl.concat([load(p).df.select("prompt") for p in sorted(glob.glob(str(llmbar_dir / "LLMBar_*.json")))])
    other = lb["prompt"].unique(maintain_order=True).head(150)
    target = pl.DataFrame({"prompt": pl.concat([held, other])})
    is_other = np.r_[np.zeros(held.len(), bool), np.ones(other.len(), bool)]
    res = CoverageAnalyzer().run(train, AuditContext(embedder=embedder, target=target))
    t = res.details["target"]
    ood = t["ood_flag"].to_numpy()
    assert ood[is_other].mean() >= 0.85 and ood[~is_other].mean() <= 0.15
    score = t["ood_score"].to_numpy()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(is_other, score) >= 0.95
    in_gap = t["cluster"].is_in(res.details["gaps"]["cluster"].implode()).to_numpy()
    assert in_gap[is_other].mean() >= 0.8 and in_gap[~is_other].mean() <= 0.1


# ---- the embedding cache: a second audit reads every vector back ------------------------------------
def test_second_audit_hits_the_embedding_cache(tmp_path) -> None:
    from prefaudit import synth
    from prefaudit.audit import audit
    from prefaudit.embed import Embedder

    s = synth.make(n_pairs=60, n_target=30, n_eval=10, seed=3)
    first = Embedder(cache_dir=tmp_path)
    a1 = audit(s.pairs, target=s.target, analyzers=["coverage"], embedder=first)
    assert first.stats.misses > 0
    second = Embedder(cache_dir=tmp_path)  # a new process would start like this
    a2 = audit(s.pairs, target=s.target, analyzers=["coverage"], embedder=second)
    assert second.stats.misses == 0 and second.stats.hits == first.stats.misses
    assert second._encoder is None  # the model was never loaded
    for k in ("coverage.n_clusters", "coverage.target_ood_share", "coverage.target_gap_share"):
        assert a1.metric(k).value == a2.metric(k).value


# ---- pieces against references ------------------------------------------------------------------------
def test_knn_cosine_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    base, query = _unit(rng.normal(size=(500, 16))), _unit(rng.normal(size=(70, 16)))
    sims, idx = knn_cosine(query, base, 5, block=16)
    full = query @ base.T
    ref = np.argsort(-full, axis=1)[:, :5]
    assert np.array_equal(idx, ref)
    assert np.allclose(sims, np.take_along_axis(full, ref, axis=1), atol=1e-6)
    sims_self, idx_self = knn_cosine(base, base, 3, exclude_self=True, block=64)
    assert not (idx_self == np.arange(500)[:, None]).any()
    full_self = base @ base.T
    np.fill_diagonal(full_self, -np.inf)
    assert np.array_equal(idx_self, np.argsort(-full_self, axis=1)[:, :3])
    assert knn_distance(query, base, 5) == pytest.approx(1 - np.take_along_axis(full, ref, axis=1).mean(1), abs=1e-6)


def test_ood_model_calibration_and_far_points() -> None:
    """In-distribution points are flagged at about 1 - quantile; points from elsewhere always."""
    rng = np.random.default_rng(1)
    centre = rng.normal(size=32)
    train = _unit(centre + rng.normal(size=(3000, 32)))
    fresh = _unit(centre + rng.normal(size=(2000, 32)))
    far = _unit(-centre + rng.normal(size=(200, 32)))
    model = ood_model(train, k=5, quantile=0.95, seed=0)
    assert np.mean(model.score(fresh) > model.threshold) == pytest.approx(0.05, abs=0.02)
    assert np.mean(model.score(far) > model.threshold) == 1.0
    p = model.p_value(model.score(fresh))
    assert np.mean(p < 0.05) == pytest.approx(0.05, abs=0.02)
    lo, hi = quantile_interval(model.loo, 0.95)
    assert lo <= model.threshold <= hi


def test_gap_mask_rules() -> None:
    n_train = np.array([500, 300, 195, 5, 0])
    prompts = np.array([500, 300, 195, 3, 0])
    n_target = np.array([50, 30, 60, 2, 8])
    # shares: train .5/.3/.195/.005/0, target .333/.2/.4/.0133/.0533
    assert gap_mask(n_train, prompts, n_target, ratio=2.0, min_train=5).tolist() == [False, False, True, True, True]
    assert gap_mask(n_train, prompts, n_target, ratio=3.0, min_train=1).tolist() == [False, False, False, False, True]
    assert not gap_mask(n_train, prompts, np.array([0, 0, 0, 0, 0]), ratio=2.0, min_train=5).any()


def test_choose_k_finds_planted_blobs() -> None:
    rng = np.random.default_rng(2)
    centres = _unit(rng.normal(size=(7, 24)))
    x = _unit(np.repeat(centres, 150, axis=0) + 0.15 * rng.normal(size=(1050, 24)))
    k, table = choose_k(x, k_min=2, k_max=20, seed=0)
    assert k == 7 and table.height >= 10


def test_cluster_terms_planted() -> None:
    texts = ["how do I bake sourdough bread"] * 5 + ["bread flour and yeast ratio"] * 5 + \
            ["fix a flat bicycle tire"] * 5 + ["bicycle chain keeps slipping"] * 5 + ["how do I do it"] * 4
    labels = np.array([0] * 10 + [1] * 10 + [0, 1, 0, 1])
    names = cluster_terms(texts, labels, 2, n_terms=3)
    assert "bread" in names[0] and "bicycle" in names[1]


def test_skips_without_embeddings_and_no_target() -> None:
    data = PreferenceSet(pl.DataFrame({"pair_id": ["a", "b"], "prompt": ["x", "y"], "chosen": ["c", "c"],
                                       "rejected": ["r", "r"]}))
    res = CoverageAnalyzer().run(data, AuditContext(embedder=None))
    assert res.skipped and "embeddings" in res.skipped


def test_without_target_metrics_undefined_and_scores_neutral() -> None:
    class Planted:
        def encode(self, texts: list[str]) -> np.ndarray:
            rng = np.random.default_rng(abs(hash(tuple(texts))) % 2**32)
            centre = {"cook": 0, "car": 1, "tax": 2, "dog": 3, "sky": 4}
            base = np.eye(8)[[centre[t.split()[0]] for t in texts]]
            return _unit(base + 0.05 * rng.normal(size=(len(texts), 8)))

    prompts = [f"{w} question {i}" for w in ("cook", "car", "tax", "dog", "sky") for i in range(40)]
    data = PreferenceSet(pl.DataFrame({"pair_id": [str(i) for i in range(200)], "prompt": prompts,
                                       "chosen": ["c"] * 200, "rejected": ["r"] * 200}))
    res = CoverageAnalyzer().run(data, AuditContext(embedder=Planted()))
    assert res.metrics["coverage.n_clusters"].value == 5
    assert res.metrics["coverage.target_gap_share"].value is None
    assert "target" in res.metrics["coverage.target_ood_share"].note
    assert (res.pairs["coverage_score"] == 1.0).all() and not res.pairs["coverage_flag"].any()
    by_word = res.pairs.with_columns(pl.Series("w", [p.split()[0] for p in prompts]))
    assert by_word.group_by("w").agg(pl.col("coverage_cluster").n_unique())["coverage_cluster"].max() == 1
    assert "target" not in res.details
