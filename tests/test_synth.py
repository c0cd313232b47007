"""Synthetic data with known ground truth: determinism, knobs against the truth, the gold scorer, topics."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from prefaudit import synth
from prefaudit.stats import wilson_interval
from prefaudit.synth.bank import CLOSERS, OPENERS, TOPICS
from prefaudit.synth.gold import classify_sentence, gold_score, gold_scores, split_sentences, topic_of

Z999 = 3.29  # 99.9% intervals where a check should hold for any seed


@pytest.fixture(scope="module")
def clean() -> synth.SynthData:
    return synth.make(2000, seed=0)


@pytest.fixture(scope="module")
def big() -> synth.SynthData:
    return synth.make(4000, seed=11, length_bias=0.8, n_eval=0, n_target=0)


def _texts(d: synth.SynthData) -> set[tuple[str, frozenset[str]]]:
    df = d.pairs.df
    return {(p, frozenset((c, r))) for p, c, r in zip(df["prompt"], df["chosen"], df["rejected"], strict=True)}


# ---- determinism -------------------------------------------------------------------------------
def test_same_seed_same_data_other_seed_other_data():
    a, b, c = synth.make(300, seed=5, flip_rate=0.1), synth.make(300, seed=5, flip_rate=0.1), synth.make(300, seed=6)
    assert a.pairs.df.equals(b.pairs.df) and a.truth.equals(b.truth)
    assert a.eval.df.equals(b.eval.df) and a.target.equals(b.target)
    assert not a.pairs.df["prompt"].equals(c.pairs.df["prompt"])


def test_texts_do_not_depend_on_label_knobs():
    base = synth.make(400, seed=3)
    for kw in ({"flip_rate": 0.3}, {"length_bias": 0.9, "biased_share": 0.5}):
        assert _texts(synth.make(400, seed=3, **kw)) == _texts(base)
    multi = synth.make(400, seed=3, n_annotators=3)
    assert _texts(multi) == _texts(base)


# ---- label noise knobs against the truth -------------------------------------------------------
def test_flips_exact_count_and_match_truth():
    base, noisy = synth.make(1000, seed=2), synth.make(1000, seed=2, flip_rate=0.2)
    truth = noisy.truth
    assert truth["flipped"].sum() == 200
    # a pair is flipped exactly when its chosen differs from the clean set's chosen
    swapped = (noisy.pairs.df["chosen"] != base.pairs.df["chosen"]).to_numpy()
    flipped = truth["flipped"].to_numpy()
    tie = truth["quality_tie"].to_numpy()
    assert np.array_equal(swapped[~tie], flipped[~tie])
    assert not flipped[tie].any()
    assert (truth.filter(pl.col("flipped"))["label_correct"] == False).all()  # noqa: E712
    assert (truth.filter(~pl.col("flipped") & ~pl.col("quality_tie"))["label_correct"]).all()
    assert noisy.noise_rate.value == pytest.approx(0.2)
    assert sorted(noisy.flipped_ids) == truth.filter(pl.col("flipped"))["pair_id"].sort().to_list()


def test_clean_labels_follow_the_gold_scorer(clean):
    df = clean.pairs.df.join(clean.truth, on="pair_id")
    gc = gold_scores(df["prompt"].to_list(), df["chosen"].to_list())
    gr = gold_scores(df["prompt"].to_list(), df["rejected"].to_list())
    tie = df["quality_tie"].to_numpy()
    assert np.allclose(gc, df["gold_chosen"].to_numpy()) and np.allclose(gr, df["gold_rejected"].to_numpy())
    assert (gc[~tie] > gr[~tie]).all() and (gc[tie] == gr[tie]).all()
    assert (gc[~tie] - gr[~tie]).min() >= 0.5 - 1e-9  # the documented minimum gold margin
    assert clean.bayes_accuracy.value >= 0.95 and clean.bayes_accuracy.n == (~tie).sum()
    assert clean.label_accuracy.value == 1.0
    lo, hi = wilson_interval(tie.sum(), len(tie), Z999)
    assert lo <= 0.05 <= hi  # tie_share default


def test_eval_set_is_clean_and_held_out(clean):
    ev = clean.eval.df
    assert ev.height == 500 and not ev["tie"].any()
    assert (gold_scores(ev["prompt"].to_list(), ev["chosen"].to_list())
            > gold_scores(ev["prompt"].to_list(), ev["rejected"].to_list())).all()
    train = set(clean.pairs.df["prompt"])
    assert not train & set(ev["prompt"]) and not train & set(clean.target["prompt"])
    assert clean.pairs.df["prompt"].n_unique() == len(clean.pairs)


def test_annotator_votes_match_accuracies():
    acc = [0.95, 0.9, 0.85, 0.6]
    d = synth.make(3000, seed=4, annotator_accuracies=acc, n_eval=0, n_target=0)
    votes = d.pairs.annotations.df.join(d.truth.select("pair_id", "true_label"), on="pair_id")
    assert votes.height == 4 * 3000 and d.annotator_truth == dict(zip(["ann-01", "ann-02", "ann-03", "ann-04"], acc,
                                                                         strict=True))
    for ann_id, a in d.annotator_truth.items():
        v = votes.filter(pl.col("annotator_id") == ann_id)
        lo, hi = wilson_interval(int((v["label"] == v["true_label"]).sum()), v.height, Z999)
        assert lo <= a <= hi, (ann_id, a, lo, hi)
    # the recorded chosen is the consensus of the votes
    cons = d.pairs.annotations.consensus().select("pair_id", "consensus")
    df = d.pairs.df.join(cons, on="pair_id")
    assert (df["tie"] == (df["consensus"] == "tie")).all()
    decided = df.filter(~pl.col("tie"))
    assert (decided["chosen_side"] == decided["consensus"]).all()


def test_votes_per_pair_subset():
    d = synth.make(500, seed=1, n_annotators=5, votes_per_pair=2, n_eval=0, n_target=0)
    counts = d.pairs.annotations.df.group_by("pair_id").len()["len"]
    assert (counts == 2).all() and d.pairs.annotations.df["annotator_id"].n_unique() == 5
    assert list(d.annotator_truth.values()) == [0.95, 0.8625, 0.775, 0.6875, 0.6]


# ---- length: independent of quality by default, biased on request ------------------------------
def test_length_independent_of_quality_by_default():
    d = synth.make(4000, seed=11, n_eval=0, n_target=0)
    t = d.truth.filter(~pl.col("quality_tie"))
    lo, hi = wilson_interval(int(t["chosen_longer"].sum()), t.height)
    assert lo <= 0.5 <= hi, (lo, hi)


def test_length_bias_knob(big):
    t = big.truth
    assert t["biased"].sum() == 1000  # biased_share 0.25 of 4000
    b = t.filter(pl.col("biased"))
    lo, hi = wilson_interval(int(b["chosen_longer"].sum()), b.height, Z999)
    assert lo <= 0.8 <= hi
    lo, _ = wilson_interval(int(t["chosen_longer"].sum()), t.height)
    assert lo > 0.5
    # biased labels ignore quality: about half of the biased non-tie pairs are mislabeled
    bn = b.filter(~pl.col("quality_tie"))
    lo, hi = wilson_interval(int((bn["label_correct"] == False).sum()), bn.height, Z999)  # noqa: E712
    assert lo <= 0.5 <= hi
    assert not t.filter(~pl.col("biased") & ~pl.col("quality_tie"))["label_correct"].is_in([False]).any()


def test_surface_features_carry_no_quality(clean):
    banned = re.compile(r"!|\b(might|may|perhaps|possibly|probably|maybe|seems?|usually|often|sometimes|sorry|"
                        r"apolog\w*|please|thank\w*|cannot|can't|unable|as an ai|i think)\b", re.I)
    for spec in TOPICS.values():
        for good, bad in spec["facts"]:
            assert not banned.search(good) and not banned.search(bad), (good, bad)
            assert abs(len(good) - len(bad)) <= 20
        assert abs(np.mean([len(g) - len(b) for g, b in spec["facts"]])) < 1.5
    df = clean.pairs.df
    bullets = [df[c].str.contains("\n- ").mean() for c in ("chosen", "rejected")]
    assert abs(bullets[0] - bullets[1]) < 0.05


# ---- the gold scorer on any text ---------------------------------------------------------------
def test_gold_score_rules():
    cooking, pets = TOPICS["cooking"]["facts"], TOPICS["pets"]["facts"]
    prompt = "What is the best way to make beef stew at home?"
    assert topic_of(prompt) == "cooking" and topic_of("Tell me a joke.") is None
    good = " ".join(g for g, _ in cooking[:4])
    assert gold_score(prompt, good) == 1.0
    assert gold_score(prompt, " ".join(b for _, b in cooking[:3])) == -1.0
    assert gold_score(prompt, pets[0][0]) == -1.0  # off-topic
    assert gold_score("Tell me a joke.", pets[0][0]) == 1.0  # no topic known: any correct fact counts
    mixed = f"{cooking[0][0]} {cooking[1][0]} {cooking[2][1]} The weather was nice yesterday."
    assert gold_score(prompt, mixed) == pytest.approx((1 + 1 - 1 + 0) / 4)
    # boilerplate is skipped, length does not raise the score, formatting does not matter
    opener, closer = OPENERS[0].format(s="beef stew"), CLOSERS[1].format(s="beef stew")
    assert gold_score(prompt, f"{opener} {mixed} {closer}") == gold_score(prompt, mixed)
    assert gold_score(prompt, mixed + " " + mixed) == gold_score(prompt, mixed)
    bullets = opener + "\n\n" + "\n".join("- " + s for s in split_sentences(mixed))
    assert gold_score(prompt, bullets) == gold_score(prompt, mixed)
    assert gold_score(prompt, "") == 0.0


def test_gold_score_tolerates_generated_text():
    prompt = "Any tips for making fried rice for dinner?"
    good, bad = TOPICS["cooking"]["facts"][4]
    sloppy_good = good.lower().rstrip(".").replace("a few", "few")  # no capital, no period, a word changed
    sloppy_bad = bad.lower().replace(",", "").rstrip(".")
    assert classify_sentence(sloppy_good) == ("cooking", 1)
    assert classify_sentence(sloppy_bad) == ("cooking", -1)
    assert gold_score(prompt, sloppy_good + "\n" + sloppy_bad + "\nthe the the of and") == 0.0
    assert gold_score(prompt, sloppy_good + " slice slice cook") > gold_score(prompt, sloppy_bad)
    assert classify_sentence("ok") == "skip"


# ---- topics ------------------------------------------------------------------------------------
def test_prompts_cluster_by_topic(clean):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    prompts = clean.pairs.df["prompt"].to_list()
    topics = np.array(clean.pairs.df["topic"].to_list())
    x = TfidfVectorizer(stop_words="english").fit_transform(prompts)
    _, idx = NearestNeighbors(n_neighbors=6, metric="cosine").fit(x).kneighbors(x)
    purity = (topics[idx[:, 1:]] == topics[:, None]).mean()
    assert purity >= 0.9, purity
    for frame in (clean.pairs.df, clean.eval.df, clean.target):
        assert [topic_of(p) for p in frame["prompt"]] == frame["topic"].to_list()


def test_withheld_topics(clean):
    assert clean.withheld_topics == ("astronomy",) and "astronomy" not in clean.topics
    assert "astronomy" not in set(clean.pairs.df["topic"]) | set(clean.eval.df["topic"])
    for col in ("chosen", "rejected"):  # not even as off-topic sentences
        for text in clean.pairs.df[col]:
            for s in split_sentences(text):
                c = classify_sentence(s)
                assert not (isinstance(c, tuple) and c[0] == "astronomy")
    tgt = clean.target
    assert tgt.height == 400 and tgt["withheld"].sum() == 100
    assert set(tgt.filter(pl.col("withheld"))["topic"]) == {"astronomy"}
    assert set(tgt.filter(~pl.col("withheld"))["topic"]) <= set(clean.topics)
    assert synth.make(50, withheld_topics="pets", n_target=20, n_eval=0).withheld_topics == ("pets",)
    none = synth.make(200, withheld_topics=(), n_target=50, n_eval=10)
    assert not none.target["withheld"].any() and len(none.topics) == len(TOPICS)


# ---- writing, loading, the CLI, the bundled sample data -----------------------------------------
def test_write_and_load_roundtrip(tmp_path):
    from prefaudit import load, load_prompts

    d = synth.make(120, seed=9, flip_rate=0.1, n_target=30, n_eval=20)
    paths = d.write(tmp_path / "single")
    loaded = load(paths["pairs"])
    assert loaded.df.select("pair_id", "prompt", "chosen", "rejected").equals(
        d.pairs.df.select("pair_id", "prompt", "chosen", "rejected"))
    truth = pl.read_ndjson(paths["truth"])
    assert truth["flipped"].sum() == 12 and truth.height == 120
    meta = json.loads(paths["meta"].read_text())
    assert meta["withheld_topics"] == ["astronomy"] and meta["flipped"] == 12
    assert load_prompts(paths["target"]).height == 30 and len(load(paths["eval"])) == 20

    m = synth.make(120, seed=9, annotator_accuracies=[0.9, 0.8, 0.7], n_target=0, n_eval=0)
    paths = m.write(tmp_path / "multi.jsonl", tmp_path / "multi_truth.jsonl")
    assert paths["annotations"] == tmp_path / "multi.annotations.jsonl"
    assert set(pl.read_ndjson(paths["pairs"]).columns) == {"pair_id", "prompt", "response_a", "response_b", "topic"}
    loaded = load(paths["pairs"], annotations=paths["annotations"])
    assert len(loaded.annotations) == 360
    got = loaded.df.select("pair_id", "chosen", "tie").sort("pair_id")
    assert got.equals(m.pairs.df.select("pair_id", "chosen", "tie").sort("pair_id"))
    assert json.loads((tmp_path / "multi_truth.meta.json").read_text())["annotator_accuracies"] == {
        "ann-01": 0.9, "ann-02": 0.8, "ann-03": 0.7}


def _run_cli(args: list[str]) -> int:
    from prefaudit.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code


def test_cli_writes_files(tmp_path, capsys):
    out = tmp_path / "p.jsonl"
    code = _run_cli(["synth", "--out", str(out), "--truth", str(tmp_path / "t.jsonl"), "--n", "150",
                     "--annotators", "3", "--target-out", str(tmp_path / "tg.jsonl"), "--n-target", "40",
                     "--withhold", "cars", "--withhold", "pets", "--seed", "7"])
    assert code == 0
    assert pl.read_ndjson(out).height == 150
    assert pl.read_ndjson(tmp_path / "p.annotations.jsonl").height == 450
    meta = json.loads((tmp_path / "t.meta.json").read_text())
    assert meta["withheld_topics"] == ["cars", "pets"] and len(meta["annotator_accuracies"]) == 3
    assert set(pl.read_ndjson(tmp_path / "tg.jsonl")["topic"]) >= {"cars", "pets"}
    assert "150 pairs" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--flip-rate", "1.5"], ["--length-bias", "2"], ["--withhold", "nope"],
                                  ["--accuracies", "0.9,x"], ["--n", "0"], ["--annotators", "2", "--flip-rate", "0.1"],
                                  ["--accuracies", "0.9,0.8", "--annotators", "3"], ["--flip-rate", "0.99"]])
def test_cli_bad_values_exit_2(tmp_path, capsys, args):
    assert _run_cli(["synth", "--out", str(tmp_path / "p.jsonl"), "--n", "50", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prefaudit: error:") and "\n" not in err


def test_sample_data_is_reproducible(sample_data: Path, tmp_path):
    """The bundled sample_data/ is exactly what the commands in its README generate."""
    readme = (sample_data / "README.md").read_text()
    commands = re.findall(r"^\s*prefaudit (synth .+)$", readme, re.M)
    assert len(commands) == 2
    bundled = sorted(p.name for p in sample_data.iterdir() if p.suffix in (".jsonl", ".json"))
    for cmd in commands:
        args = shlex.split(cmd.replace("sample_data/", f"{tmp_path}/"))
        assert _run_cli(args) == 0
    regenerated = sorted(p.name for p in tmp_path.iterdir())
    assert regenerated == bundled
    for name in bundled:
        assert (tmp_path / name).read_bytes() == (sample_data / name).read_bytes(), name
