"""The real files in ../shared/data load with the documented counts and handling.

Expected values are computed independently from the raw files (gzip/json/csv modules), not from the
loader's own helpers.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter, defaultdict

import polars as pl
import pytest

from prefaudit.data.load import load

pytestmark = pytest.mark.realdata
MARKER = "\n\nAssistant:"
TULU_LEVELS = {"a-is-better": 2, "a-is-slightly-better": 1, "tie": 0, "b-is-slightly-better": -1, "b-is-better": -2}


@pytest.fixture(scope="module")
def hh(hh_path):
    return load(hh_path)


@pytest.fixture(scope="module")
def hh_raw(hh_path):
    with gzip.open(hh_path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_hh_counts_and_accounting(hh, hh_path):
    assert hh.source.rows_read == 2312
    assert len(hh) == 2312
    assert hh.quarantine.height == 0
    assert hh.source.format == "jsonl/hh"
    assert hh.source.path == str(hh_path)
    assert len(hh.source.sha256) == 64
    # the four pairs whose final chosen turn is empty are kept (for the hygiene analyzer)
    assert int((hh.df["chosen"].str.strip_chars() == "").sum()) == 4


def test_hh_split_is_lossless_and_prompt_is_shared(hh, hh_raw):
    df = hh.df
    for rec, (p, c, r) in zip(hh_raw, df.select("prompt", "chosen", "rejected").iter_rows(), strict=True):
        assert p + c == rec["chosen"]
        assert p + r == rec["rejected"]
        assert p.endswith(MARKER)
    # prompts computed as "up to the last marker of each transcript" differ for the pairs whose response
    # contains the marker: the loader's prompt is shorter there, and still ends with the marker
    naive = [rec["chosen"][: rec["chosen"].rfind(MARKER) + len(MARKER)] for rec in hh_raw]
    naive_r = [rec["rejected"][: rec["rejected"].rfind(MARKER) + len(MARKER)] for rec in hh_raw]
    differs = sum(a != b for a, b in zip(naive, naive_r, strict=True))
    assert 4 <= differs <= 5
    shorter = sum(len(p) < len(n) for p, n in zip(df["prompt"].to_list(), naive, strict=True))
    assert shorter >= 1


def test_hh_ids_are_content_hashes_and_stable(hh, hh_path):
    from prefaudit.data.preference_set import content_pair_ids

    df = hh.df
    assert df["pair_id"].to_list() == content_pair_ids(df["prompt"].to_list(), df["chosen"].to_list(),
                                                       df["rejected"].to_list())
    assert load(hh_path).df["pair_id"].to_list() == df["pair_id"].to_list()


def test_llmbar_counts_and_labels(llmbar_dir):
    natural = load(llmbar_dir / "LLMBar_Natural.json")
    assert len(natural) == 100 and natural.quarantine.height == 0
    total = 0
    for path in sorted(llmbar_dir.glob("LLMBar_Adversarial_*.json")):
        ps = load(path)
        raw = json.loads(path.read_text(encoding="utf-8"))
        assert ps.source.rows_read == len(raw) == len(ps)
        for rec, row in zip(raw, ps.df.iter_rows(named=True), strict=True):
            better, worse = (rec["output_1"], rec["output_2"]) if rec["label"] == 1 else (rec["output_2"], rec["output_1"])
            assert (row["prompt"], row["chosen"], row["rejected"]) == (rec["input"], better, worse)
            assert row["chosen_side"] == ("a" if rec["label"] == 1 else "b")
            assert row["tie"] is False
        total += len(ps)
    assert total == 319


@pytest.fixture(scope="module")
def tulu(tulu_annotations_path):
    return load(tulu_annotations_path)


@pytest.fixture(scope="module")
def tulu_rows(tulu_annotations_path):
    with open(tulu_annotations_path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_tulu_counts(tulu, tulu_rows):
    assert len(tulu_rows) == 1150
    assert tulu.source.rows_read == 1150
    assert len(tulu) == 996
    ann = tulu.annotations
    assert ann is not None
    assert len(ann) + ann.quarantine.height == 1150
    assert ann.quarantine["reason"].to_list() == ["repeated_rating"] * 9
    assert len(ann.annotators) == 16
    assert any("repeated_rating" in n for n in tulu.source.notes)
    rated_by = defaultdict(set)
    n_rows = Counter(r["instance_index"] for r in tulu_rows)
    for r in tulu_rows:
        rated_by[r["instance_index"]].add(r["evaluator"])
    assert sum(n > 1 for n in n_rows.values()) == 127  # README: rated more than once
    per_pair = ann.df.group_by("pair_id").len()
    # after keeping one vote per (pair, evaluator): pairs with several distinct evaluators
    assert per_pair.filter(pl.col("len") > 1).height == sum(len(e) > 1 for e in rated_by.values())
    # sorted model names: model_a < model_b everywhere
    assert tulu.df.filter(pl.col("model_a") > pl.col("model_b")).height == 0


def test_tulu_repeated_ratings_keep_latest(tulu, tulu_rows):
    by_key = defaultdict(list)
    for r in tulu_rows:
        by_key[(r["instance_index"], r["evaluator"])].append(r)
    repeated = {k: v for k, v in by_key.items() if len(v) > 1}
    assert len(repeated) == 6
    dropped = {r["id"] for v in repeated.values() for r in sorted(v, key=lambda r: r["timestamp"])[:-1]}
    kept = {max(v, key=lambda r: r["timestamp"])["id"] for v in repeated.values()}
    ann = tulu.annotations
    assert set(ann.df["id"].to_list()) & dropped == set()
    assert kept <= set(ann.df["id"].to_list())
    assert len(dropped) == 9


def test_tulu_canonical_order_flips_labels(tulu, tulu_rows):
    ann = tulu.annotations.df
    by_id = {r["id"]: r for r in tulu_rows}
    pairs = {r["pair_id"]: r for r in tulu.df.iter_rows(named=True)}
    swapped = 0
    for v in ann.iter_rows(named=True):
        raw = by_id[v["id"]]
        canon_a = min(raw["model_a"], raw["model_b"])
        flip = raw["model_a"] != canon_a
        swapped += flip
        assert v["score"] == (-1 if flip else 1) * TULU_LEVELS[raw["preference"]]
        assert v["shown_order"] == ("ba" if flip else "ab")
        assert v["label"] == ("a" if v["score"] > 0 else "b" if v["score"] < 0 else "tie")
        p = pairs[v["pair_id"]]
        assert p["model_a"] == canon_a
        assert p["prompt"] == raw["prompt"]
        resp_a = raw["completion_b"] if flip else raw["completion_a"]
        resp_b = raw["completion_a"] if flip else raw["completion_b"]
        chosen_is_a = p["chosen_side"] == "a"
        assert (p["chosen"], p["rejected"]) == ((resp_a, resp_b) if chosen_is_a else (resp_b, resp_a))
        assert v["a_is_acceptable"] == (raw["completion_b_is_acceptable"] if flip else raw["completion_a_is_acceptable"])
    assert swapped > 0
    # comparisons shown in both orders (README: 83 over all rows; recount over the kept votes)
    raw_orders = defaultdict(set)
    for r in tulu_rows:
        raw_orders[r["instance_index"]].add(r["model_a"])
    assert sum(len(o) == 2 for o in raw_orders.values()) == 83
    kept_orders = defaultdict(set)
    for i in ann["id"].to_list():
        kept_orders[by_id[i]["instance_index"]].add(by_id[i]["model_a"])
    both = ann.group_by("pair_id").agg(pl.col("shown_order").n_unique().alias("n")).filter(pl.col("n") == 2)
    assert both.height == sum(len(o) == 2 for o in kept_orders.values())


def test_tulu_consensus_matches_votes(tulu):
    cons = tulu.annotations.consensus()
    merged = tulu.df.join(cons, on="pair_id")
    assert merged.height == 996
    assert (merged["tie"] == (merged["consensus"] == "tie")).all()
    side = merged.filter(~pl.col("tie"))
    assert (side["chosen_side"] == side["consensus"]).all()
    assert tulu.df["tie"].sum() == cons.filter(pl.col("consensus") == "tie").height
