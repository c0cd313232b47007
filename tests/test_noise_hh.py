"""Real data: hh-rlhf harmless test with 20% flips injected by the test — prefaudit's noise_score finds
them better than the issue's anchor (cross-fitted logistic regression on MiniLM difference features +
cleanlab), measured in the same run. The full measurement is benchmarks/bench_noise.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from prefaudit.analyzers.base import AuditContext
from prefaudit.analyzers.noise import NoiseAnalyzer

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

N_PAIRS = 1200  # a seeded subset keeps the embedding cost (cached on disk) and the runtime down


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_noise.py"
    spec = importlib.util.spec_from_file_location("bench_noise", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_hh_injected_flips_beat_the_anchor(hh_path) -> None:
    import prefaudit
    from prefaudit.embed import Embedder

    bench = _bench()
    data = prefaudit.load(hh_path).sample(N_PAIRS, seed=0)
    noisy, flipped = bench.inject_flips(data, 0.2, seed=0)
    assert flipped.sum() == 240
    embedder = Embedder()
    a_score, a_flags = bench.anchor(noisy, embedder, seed=0)
    anchor = bench.evaluate(a_score, a_flags, flipped, at_recall=None)
    anchor_at = bench.evaluate(a_score, a_flags, flipped, at_recall=anchor["recall"])
    r = NoiseAnalyzer().run(noisy, AuditContext(seed=0, embedder=embedder))
    p = noisy.df.select("pair_id").join(r.pairs, on="pair_id", how="left")
    ours = bench.evaluate(p["noise_score"].to_numpy(), p["noise_flag"].to_numpy(), flipped,
                          at_recall=anchor["recall"])
    assert 0.55 < anchor["auroc"] < 0.66  # the anchor as the issue measured it (about 0.60)
    assert ours["auroc"] >= anchor["auroc"] + 0.03
    assert ours["precision_at_anchor_recall"] > anchor_at["precision_at_anchor_recall"]
    assert ours["precision"] > anchor["precision"]
    assert r.config["embeddings"] is True and "embedding" in r.config["features"]
    rate = r.metrics["noise.estimated_rate"]
    assert rate.ci is not None and rate.ci[1] >= 0.2  # at least the injected share is plausible
