"""Ablation: arms, paired statistics, resumability, ablation.json contract, CLI and the report slot."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prefaudit import synth
from prefaudit.ablate import AblationConfig, AblationContext, build_arm, paired_bootstrap, split_eval
from prefaudit.cli import main
from prefaudit.errors import ConfigError

TINY = {"n_layer": 1, "n_embd": 32, "n_head": 2, "vocab_size": 512}

# One worker runs the whole module, so the module-scoped ablation is trained once.
pytestmark = pytest.mark.xdist_group("ablate")

RUN = dict(seeds=2, steps=3, sft_steps=2, batch_size=8, max_length=96, lr=1e-3, preset=TINY, embeddings=False,
           arms=("raw", "cleaned", "random_drop", "robust", "length_debiased", "subset:first100"),
           gold=synth.gold_scores, generate=3, max_new_tokens=6, n_boot=200)


@pytest.fixture(scope="module")
def noisy():
    return synth.make(n_pairs=160, flip_rate=0.2, length_bias=0.8, n_eval=40, seed=3)


@pytest.fixture(scope="module")
def ablation(noisy, tmp_path_factory):
    from prefaudit.ablate import ablate

    out = tmp_path_factory.mktemp("ablation")
    ids = noisy.pairs.pair_ids[:100]
    res = ablate(noisy.pairs, noisy.eval, out=out, subsets={"first100": ids}, **RUN)
    return res, out, ids


def test_ablation_json_contract(ablation, noisy):
    res, out, _ = ablation
    d = json.loads((out / "ablation.json").read_text())
    assert set(d["arms"]) == {"raw", "cleaned", "random_drop", "robust", "length_debiased", "subset:first100"}
    for arm in d["arms"].values():
        assert arm["n_pairs"] > 0 and len(arm["per_seed"]) == 2
        for metric in ("preference_accuracy", "mean_margin", "gold_win_rate", "mean_length"):
            assert metric in arm["mean"]
            lo, hi = arm["ci"][metric]
            assert lo <= arm["mean"][metric] + 1e-9 and arm["mean"][metric] <= hi + 1e-9
    pairs = {(x["arm"], x["baseline"], x["metric"]) for x in d["differences"]}
    assert ("cleaned", "raw", "preference_accuracy") in pairs
    assert ("cleaned", "random_drop", "preference_accuracy") in pairs
    assert ("length_debiased", "raw", "mean_length") in pairs and ("cleaned", "raw", "gold_win_rate") in pairs
    assert d["eval"]["n_pairs"] == len(noisy.eval)
    assert d["eval"]["leakage"]["value"] is not None
    assert d["cleaning"]["kept"] + d["cleaning"]["removed"] == d["cleaning"]["pairs_in"]


def test_arm_sizes_and_options(ablation):
    res, _, ids = ablation
    arms = res.summary["arms"]
    # the control drops as many pairs as the cleaning did
    assert arms["random_drop"]["n_pairs"] == arms["cleaned"]["n_pairs"] < arms["raw"]["n_pairs"]
    assert arms["robust"]["options"]["loss"] == "robust" and 0 < arms["robust"]["options"]["eps"] < 0.5
    assert arms["subset:first100"]["n_pairs"] == len(ids)
    assert arms["length_debiased"]["n_pairs"] < arms["raw"]["n_pairs"]


def test_every_run_shares_the_start_model_and_steps(ablation):
    _, out, _ = ablation
    for seed in (0, 1):
        starts = set()
        for run in (out / "runs").iterdir():
            summary = json.loads((run / f"seed{seed}" / "summary.json").read_text())
            assert summary["steps"] == 3
            starts.add(summary["model_source"])
        assert len(starts) == 1


def test_start_model_is_label_free_sft_and_reference_samples_are_recorded(ablation, noisy):
    _, out, _ = ablation
    d = json.loads((out / "ablation.json").read_text())
    for seed in (0, 1):
        records = [json.loads(x) for x in (out / "models" / f"seed{seed}" / "sft_run" / "metrics.jsonl").open()]
        assert [r["step"] for r in records] == [1, 2] and all(r["kind"] == "sft" for r in records)
        assert (out / "models" / f"seed{seed}" / "start" / "config.json").is_file()
    ref = d["reference_generations"]
    assert [r["seed"] for r in ref] == [0, 1]
    # 6 new tokens from a barely trained model: eos almost never comes first, so samples hit the cap
    assert all(r["capped_share"] > 0.5 and r["mean_length"] > 0 for r in ref)
    for arm in d["arms"].values():
        assert all(0 <= r["capped_share"] <= 1 for r in arm["per_seed"])


def test_resume_skips_finished_runs(ablation, noisy, monkeypatch):
    import prefaudit.train as train_pkg
    from prefaudit import ablate as ab

    res, out, ids = ablation
    calls = []
    monkeypatch.setattr(train_pkg, "train", lambda *a, **k: calls.append(1))
    again = ab.ablate(noisy.pairs, noisy.eval, out=out, subsets={"first100": ids}, **RUN)
    assert calls == []
    assert again.summary["differences"] == res.summary["differences"]


def test_length_debiased_arm_balances_chosen_longer():
    noisy = synth.make(n_pairs=1000, flip_rate=0.2, length_bias=0.8, n_eval=40, seed=3)
    ctx = AblationContext(noisy.pairs, noisy.eval, AblationConfig(), {})
    plan = build_arm("length_debiased", ctx)
    df = plan.pairs(0).df
    longer = (df["chosen"].str.len_chars() > df["rejected"].str.len_chars()).mean()
    raw = noisy.pairs.df
    assert (raw["chosen"].str.len_chars() > raw["rejected"].str.len_chars()).mean() > 0.55
    assert abs(longer - 0.5) <= 0.03
    rdpo = build_arm("length_debiased", AblationContext(noisy.pairs, noisy.eval,
                                                        AblationConfig(length_debias="rdpo", rdpo_alpha=0.05), {}))
    assert rdpo.options == {"loss": "rdpo", "alpha": 0.05} and len(rdpo.pairs(0)) == len(noisy.pairs.trainable())


def test_cleaned_length_debiased_arm_is_the_cleaned_pairs_balanced():
    noisy = synth.make(n_pairs=1000, flip_rate=0.2, length_bias=0.8, n_eval=40, seed=3)
    ctx = AblationContext(noisy.pairs, noisy.eval, AblationConfig(embeddings=False), {})
    kept = ctx.cleaned().data.trainable()
    kdf = kept.df
    assert (kdf["chosen"].str.len_chars() > kdf["rejected"].str.len_chars()).mean() > 0.55
    plan = build_arm("cleaned_length_debiased", ctx)
    a, b = plan.pairs(0), plan.pairs(1)
    assert set(a.pair_ids) < set(kept.pair_ids) and set(a.pair_ids) != set(b.pair_ids)
    df = a.df
    assert abs((df["chosen"].str.len_chars() > df["rejected"].str.len_chars()).mean() - 0.5) <= 0.03
    rdpo = build_arm("cleaned_length_debiased", AblationContext(
        noisy.pairs, noisy.eval, AblationConfig(embeddings=False, length_debias="rdpo", rdpo_alpha=0.05), {}))
    assert rdpo.options == {"loss": "rdpo", "alpha": 0.05} and len(rdpo.pairs(0)) == len(kept)


def test_random_drop_differs_per_seed(noisy):
    ctx = AblationContext(noisy.pairs, noisy.eval, AblationConfig(embeddings=False), {})
    plan = build_arm("random_drop", ctx)
    a, b = plan.pairs(0), plan.pairs(1)
    assert len(a) == len(b) == len(ctx.cleaned().data.trainable())
    assert set(a.pair_ids) != set(b.pair_ids)


def test_unknown_arm_and_subset_errors(noisy):
    with pytest.raises(ConfigError):
        AblationConfig(arms=("raw", "bogus")).validate()
    ctx = AblationContext(noisy.pairs, noisy.eval, AblationConfig(), {})
    with pytest.raises(ConfigError):
        build_arm("subset:missing", ctx)


def test_paired_bootstrap_against_direct_computation():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, size=(3, 400)).astype(float)
    better = base.copy()
    better[:, :40] = 1.0  # strictly better on a known set of items
    per_arm, diffs = paired_bootstrap({"raw": base, "cleaned": better, "same": base.copy()}, ["raw"], n_boot=500)
    assert per_arm["raw"]["mean"] == pytest.approx(base.mean())
    d = {x["arm"]: x for x in diffs}
    assert d["cleaned"]["value"] == pytest.approx(better.mean() - base.mean())
    assert d["cleaned"]["ci"][0] > 0  # paired: a one-sided improvement has a CI above 0
    assert d["same"]["value"] == 0 and d["same"]["ci"] == [0.0, 0.0]
    # unpaired intervals of the two arms overlap although the paired difference is clearly positive
    assert per_arm["raw"]["ci"][1] > per_arm["cleaned"]["ci"][0]


def test_split_eval_rule(noisy):
    train, ev = split_eval(noisy.pairs, 0.1, seed=0)
    assert len(train) + len(ev) == len(noisy.pairs)
    assert not ev.df["tie"].any()
    assert not set(train.df["prompt"]) & set(ev.df["prompt"]) - set(
        noisy.pairs.df.filter(pl.col("tie"))["prompt"])


def test_split_eval_with_annotations_keeps_only_unanimous():
    s = synth.make(n_pairs=300, n_annotators=3, seed=1)
    _, ev = split_eval(s.pairs, 0.3, seed=0)
    cons = s.pairs.annotations.consensus().filter(pl.col("pair_id").is_in(ev.pair_ids))
    assert len(ev) > 0
    assert (pl.max_horizontal("votes_a", "votes_b", "votes_tie") == pl.col("n_votes")).all() is not None
    assert (cons.select(pl.max_horizontal("votes_a", "votes_b", "votes_tie") == pl.col("n_votes"))
            .to_series().all())


def test_cli_ablate_and_report_slot(tmp_path, noisy, capsys):
    data, ev = tmp_path / "pairs.jsonl", tmp_path / "eval.jsonl"
    noisy.pairs.write(data)
    noisy.eval.write(ev)
    (tmp_path / "ids.txt").write_text("\n".join(noisy.pairs.pair_ids[:50]) + "\n")
    out = tmp_path / "abl"
    with pytest.raises(SystemExit) as e:
        main(["ablate", str(data), "--eval", str(ev), "--arms", "raw,cleaned,subset:mine", "--subset",
              f"mine={tmp_path / 'ids.txt'}", "--seeds", "1", "--steps", "2", "--max-length", "96",
              "--preset", "n_layer=1", "--preset", "n_embd=32", "--preset", "n_head=2", "--preset",
              "vocab_size=512", "--no-embeddings", "--out", str(out)])
    assert e.value.code == 0
    assert "cleaned - raw" in capsys.readouterr().out
    d = json.loads((out / "ablation.json").read_text())
    assert d["arms"]["subset:mine"]["n_pairs"] == 50
    from prefaudit.audit import audit
    from prefaudit.report import render_html

    html = render_html(audit(noisy.pairs, embeddings=False), ablation=out)
    assert "subset:mine" in html and "cleaned" in html


def test_cli_ablate_bad_arm_exits_2(tmp_path, noisy):
    data = tmp_path / "pairs.jsonl"
    noisy.pairs.write(data)
    with pytest.raises(SystemExit) as e:
        main(["ablate", str(data), "--arms", "raw,nope", "--out", str(tmp_path / "x")])
    assert e.value.code == 2
