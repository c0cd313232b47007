"""Shapes, file formats, in-memory inputs, mappings, ids and round trips of the loaders."""

from __future__ import annotations

import gzip
import hashlib
import json

import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from prefaudit.data.load import load, load_annotations, load_prompts
from prefaudit.data.preference_set import PreferenceSet, content_pair_ids
from prefaudit.errors import ConfigError, InputError

FLAT = [
    {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "source": "math", "score": 1.5},
    {"prompt": "Say hi", "chosen": "Hi!", "rejected": "", "source": "chat", "score": 0.0},
    {"prompt": "Same", "chosen": "x", "rejected": "x", "source": "chat", "score": -2.0},
]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ---- file formats and in-memory inputs: one flat set, same pairs everywhere ---------------------
@pytest.fixture
def flat_files(tmp_path):
    df = pl.DataFrame(FLAT)
    paths = {"jsonl": _write_jsonl(tmp_path / "d.jsonl", FLAT), "json": tmp_path / "d.json",
             "csv": tmp_path / "d.csv", "parquet": tmp_path / "d.parquet", "gz": tmp_path / "d.jsonl.gz",
             "noext": tmp_path / "data"}
    paths["json"].write_text(json.dumps(FLAT), encoding="utf-8")
    df.write_csv(paths["csv"])
    df.write_parquet(paths["parquet"])
    with gzip.open(paths["gz"], "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in FLAT)
    paths["noext"].write_text(paths["jsonl"].read_text())
    return paths


@pytest.mark.parametrize("kind", ["jsonl", "json", "csv", "parquet", "gz", "noext"])
def test_every_file_format_gives_the_same_pairs(flat_files, kind):
    ps = load(flat_files[kind])
    assert ps.df.select("prompt", "chosen", "rejected").rows() == [(r["prompt"], r["chosen"], r["rejected"])
                                                                   for r in FLAT]
    assert ps.source.rows_read == 3 and ps.quarantine.height == 0
    assert ps.source.sha256 == hashlib.sha256(flat_files[kind].read_bytes()).hexdigest()
    assert ps.df["source"].to_list() == ["math", "chat", "chat"]
    # empty responses and identical pairs are kept
    assert ps.df.filter(pl.col("rejected") == "").height == 1
    assert ps.df.filter(pl.col("chosen") == pl.col("rejected")).height == 1


@pytest.mark.parametrize("make", [
    lambda: pl.DataFrame(FLAT), lambda: pd.DataFrame(FLAT), lambda: list(FLAT), lambda: pl.DataFrame(FLAT).lazy(),
])
def test_in_memory_inputs(make):
    ps = load(make())
    assert len(ps) == 3 and ps.source.path is None
    assert ps.df["score"].to_list() == [1.5, 0.0, -2.0]


def test_hf_dataset_input():
    datasets = pytest.importorskip("datasets")
    ps = load(datasets.Dataset.from_list(FLAT))
    assert ps.df.select("prompt", "chosen").rows() == [(r["prompt"], r["chosen"]) for r in FLAT]
    assert ps.source.format == "datasets/flat"


def test_content_ids_match_the_core_definition():
    ps = load(FLAT + [dict(FLAT[0])])
    expected = content_pair_ids([r["prompt"] for r in FLAT] + [FLAT[0]["prompt"]],
                                [r["chosen"] for r in FLAT] + [FLAT[0]["chosen"]],
                                [r["rejected"] for r in FLAT] + [FLAT[0]["rejected"]])
    assert ps.pair_ids == expected
    assert ps.pair_ids[3] == ps.pair_ids[0] + "-2"
    raw = "\x1f".join((FLAT[1]["prompt"], FLAT[1]["chosen"], FLAT[1]["rejected"]))
    assert ps.pair_ids[1] == hashlib.sha1(raw.encode()).hexdigest()[:16]


def test_python_hash_fallback_equals_plugin():
    from prefaudit.data import ids

    df = pl.DataFrame({"prompt": ["a", "é😀", ""], "chosen": ["b", "x\ny", ""], "rejected": ["c", "z", ""]})
    assert ids._python_hashes(df, ("prompt", "chosen", "rejected")).to_list() == \
        ids._hashes(df, ("prompt", "chosen", "rejected")).to_list()


def test_given_ids_kept_and_duplicates_renamed():
    recs = [dict(r, pair_id=i) for r, i in zip(FLAT, ["p1", "p1", "p1~2"], strict=True)]
    ps = load(recs)
    assert ps.pair_ids == ["p1", "p1~3", "p1~2"]
    assert ps.df["source_pair_id"].to_list() == ["p1", "p1", "p1~2"]
    assert any("renamed" in n for n in ps.source.notes)
    ints = load([dict(r, pair_id=i) for i, r in enumerate(FLAT)])
    assert ints.pair_ids == ["0", "1", "2"]


def test_round_trip_jsonl_parquet_pandas(tmp_path):
    ps = load([dict(r, tie=i == 2, chosen_side="a") for i, r in enumerate(FLAT)])
    for name in ("rt.jsonl", "rt.parquet"):
        back = load(ps.write(tmp_path / name))
        assert_frame_equal(back.df, ps.df)
    assert_frame_equal(load(ps.to_pandas()).df, ps.df)
    assert_frame_equal(PreferenceSet.from_pandas(ps.to_pandas()).df, ps.df)


# ---- shapes ---------------------------------------------------------------------------------
def test_trl_conversational_implicit_and_explicit_prompt(tmp_path):
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "joke?"}]
    recs = [
        {"chosen": [*conv, {"role": "assistant", "content": "A joke."}],
         "rejected": [*conv, {"role": "assistant", "content": "No."}]},
        {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
         "chosen": [{"role": "assistant", "content": "4"}], "rejected": [{"role": "assistant", "content": "5"}]},
        {"prompt": "plain text prompt", "chosen": [{"role": "assistant", "content": "a"}],
         "rejected": [{"role": "assistant", "content": "b"}]},
    ]
    ps = load(_write_jsonl(tmp_path / "trl.jsonl", recs))
    assert ps.source.format == "jsonl/trl"
    rows = ps.df.select("prompt", "chosen", "rejected").rows()
    assert rows[0] == ("User: hi\n\nAssistant: hello\n\nUser: joke?", "A joke.", "No.")
    assert rows[1] == ("System: Be brief.\n\nUser: 2+2?", "4", "5")
    assert rows[2] == ("plain text prompt", "a", "b")


def test_trl_single_turn_prompt_is_the_user_text():
    ps = load([{"chosen": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "good"}],
                "rejected": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "bad"}]}])
    assert ps.df.select("prompt", "chosen", "rejected").row(0) == ("Q", "good", "bad")


def test_hh_marker_inside_a_response_and_no_shared_prefix():
    p = "\n\nHuman: tell me\n\nAssistant:"
    recs = [{"chosen": p + " sure\n\nAssistant: more", "rejected": p + " no"},
            {"chosen": "\n\nHuman: a\n\nAssistant: x", "rejected": "\n\nHuman: b\n\nAssistant: x"}]
    ps = load(recs)
    assert ps.df.select("prompt", "chosen", "rejected").row(0) == (p, " sure\n\nAssistant: more", " no")
    assert ps.quarantine["reason"].to_list() == ["no_shared_prompt"]
    assert ps.quarantine["row"].to_list() == [2]


def test_pairwise_numbered_and_lettered_labels():
    llmbar = load([{"input": "q", "output_1": "one", "output_2": "two", "label": 2},
                   {"input": "q", "output_1": "one", "output_2": "two", "label": 1}])
    assert llmbar.df.select("chosen", "rejected", "chosen_side").rows() == [("two", "one", "b"), ("one", "two", "a")]
    lettered = load([{"prompt": "q", "response_a": "A", "response_b": "B", "label": lab}
                     for lab in ("b", "tie", -1.5, "nonsense")])
    assert lettered.df.select("chosen", "rejected", "tie", "chosen_side").rows() == [
        ("B", "A", False, "b"), ("A", "B", True, "a"), ("B", "A", False, "b")]
    assert lettered.quarantine["reason"].to_list() == ["bad_label"]


def test_scored_multi_response_best_vs_worst():
    recs = [{"prompt": "p", "completions": [{"model": "m1", "response": "mid", "overall_score": 3},
                                            {"model": "m2", "response": "best", "overall_score": 5},
                                            {"model": "m3", "response": "worst", "overall_score": 1},
                                            {"model": "m4", "response": "unrated", "overall_score": None}]},
            {"prompt": "q", "completions": [{"model": "a", "response": "x", "overall_score": 2},
                                            {"model": "b", "response": "y", "overall_score": 2}]},
            {"prompt": "r", "completions": [{"model": "a", "response": "x", "overall_score": 2}]}]
    ps = load(recs)
    row = ps.df.row(0, named=True)
    assert (row["chosen"], row["rejected"], row["score_margin"], row["n_responses"]) == ("best", "worst", 4.0, 3)
    assert (row["chosen_model"], row["rejected_model"]) == ("m2", "m3")
    tie = ps.df.row(1, named=True)
    assert tie["tie"] and tie["score_margin"] == 0.0
    assert ps.quarantine["reason"].to_list() == ["too_few_responses"]
    parallel = load([{"prompt": "p", "responses": ["a", "b", "c"], "scores": [0.1, 0.9, 0.5]}])
    assert parallel.df.select("chosen", "rejected").row(0) == ("b", "a")


def test_columns_and_labels_mapping():
    ps = load([{"instruction": "q", "good": "g", "bad": "b"}], columns={"chosen": "good", "rejected": "bad"})
    assert ps.df.select("prompt", "chosen", "rejected").row(0) == ("q", "g", "b")
    mapped = load([{"prompt": "q", "response_a": "A", "response_b": "B", "label": "second"}],
                  labels={"second": "b"})
    assert mapped.df["chosen"].to_list() == ["B"]
    with pytest.raises(InputError, match="goood"):
        load([{"prompt": "q", "good": "g", "bad": "b"}], columns={"chosen": "goood", "rejected": "bad"})
    with pytest.raises(ConfigError):
        load([{"prompt": "q", "response_a": "A", "response_b": "B", "label": "x"}], labels={"x": 7})
    with pytest.raises(ConfigError):
        load(FLAT, format="nope")


# ---- multi-annotator ------------------------------------------------------------------------
PAIRS = [{"pair_id": "p1", "prompt": "q1", "response_a": "A1", "response_b": "B1", "topic": "t"},
         {"pair_id": "p2", "prompt": "q2", "response_a": "A2", "response_b": "B2", "topic": "u"},
         {"pair_id": "p3", "prompt": "q3", "response_a": "A3", "response_b": "B3", "topic": "u"},
         {"pair_id": "p4", "prompt": None, "response_a": "A4", "response_b": "B4", "topic": "u"}]
VOTES = [{"pair_id": "p1", "annotator_id": "x", "label": "a"},
         {"pair_id": "p1", "annotator_id": "y", "label": "a"},
         {"pair_id": "p1", "annotator_id": "z", "label": "b"},
         {"pair_id": "p2", "annotator_id": "x", "label": "tie"},
         {"pair_id": "p2", "annotator_id": "y", "label": 0},
         {"pair_id": "p2", "annotator_id": "z", "label": -2},
         {"pair_id": "p9", "annotator_id": "x", "label": "a"},
         {"pair_id": "p4", "annotator_id": "x", "label": "a"},
         {"pair_id": "p1", "annotator_id": "w", "label": "maybe"}]


def test_pairs_plus_long_annotations_file(tmp_path):
    ps = load(_write_jsonl(tmp_path / "pairs.jsonl", PAIRS), annotations=_write_jsonl(tmp_path / "v.jsonl", VOTES))
    assert ps.source.rows_read == 4 == len(ps) + ps.quarantine.height
    assert dict(zip(ps.quarantine["row"].to_list(), ps.quarantine["reason"].to_list(), strict=True)) == {
        4: "missing_field", 3: "no_annotations"}
    rows = {r["pair_id"]: r for r in ps.df.iter_rows(named=True)}
    assert (rows["p1"]["chosen"], rows["p1"]["chosen_side"], rows["p1"]["tie"]) == ("A1", "a", False)
    assert (rows["p2"]["chosen"], rows["p2"]["rejected"], rows["p2"]["tie"]) == ("A2", "B2", True)
    ann = ps.annotations
    assert ann.source.rows_read == 9 == len(ann) + ann.quarantine.height
    assert sorted(ann.quarantine["reason"].to_list()) == ["bad_label", "pair_quarantined", "unknown_pair_id"]
    assert len(ann) == 6 and rows["p1"]["topic"] == "t"


def test_duplicate_ids_with_annotations_are_an_input_error():
    with pytest.raises(InputError, match="more than once"):
        load(PAIRS + [PAIRS[0]], annotations=VOTES)


def test_single_long_form_file_with_model_order_and_repeats():
    rows = [
        {"pair_id": "c1", "prompt": "q", "model_a": "m2", "model_b": "m1", "response_a": "R2", "response_b": "R1",
         "annotator_id": "u", "label": "a", "timestamp": "2024-01-01"},
        {"pair_id": "c1", "prompt": "q", "model_a": "m1", "model_b": "m2", "response_a": "R1", "response_b": "R2",
         "annotator_id": "v", "label": "b", "timestamp": "2024-01-02"},
        {"pair_id": "c1", "prompt": "q", "model_a": "m1", "model_b": "m2", "response_a": "R1", "response_b": "R2",
         "annotator_id": "u", "label": "a", "timestamp": "2023-12-31"},
        {"pair_id": "c1", "prompt": "q", "model_a": "m1", "model_b": "m2", "response_a": "R1", "response_b": "XX",
         "annotator_id": "w", "label": "a", "timestamp": "2024-01-03"},
    ]
    ps = load(rows)
    assert len(ps) == 1 and ps.source.rows_read == 4
    pair = ps.df.row(0, named=True)
    assert (pair["model_a"], pair["model_b"], pair["chosen"], pair["chosen_side"]) == ("m1", "m2", "R2", "b")
    votes = ps.annotations.df.sort("source_row")
    assert votes.select("annotator_id", "score", "shown_order").rows() == [("u", -1.0, "ba"), ("v", -1.0, "ab")]
    q = ps.annotations.quarantine
    assert dict(zip(q["row"].to_list(), q["reason"].to_list(), strict=True)) == {
        3: "repeated_rating", 4: "inconsistent_pair"}
    assert len(ps.annotations) + q.height == 4


def test_wide_form_and_load_annotations_wide(tmp_path):
    wide = [{"pair_id": "1", "prompt": "p", "response_a": "a", "response_b": "b", "label_x": "a", "label_y": 2,
             "label_z": None},
            {"pair_id": "2", "prompt": "p", "response_a": "a", "response_b": "b", "label_x": "??", "label_y": None,
             "label_z": None}]
    ps = load(wide)
    assert ps.pair_ids == ["1"] and ps.quarantine["reason"].to_list() == ["no_annotations"]
    assert sorted(ps.annotations.annotators) == ["x", "y"]
    assert ps.annotations.source.rows_read == 3 == len(ps.annotations) + ps.annotations.quarantine.height
    ann = load_annotations(pl.DataFrame([{k: v for k, v in r.items() if k == "pair_id" or k.startswith("label_")}
                                         for r in wide]))
    assert len(ann) == 2 and ann.quarantine["reason"].to_list() == ["bad_label"]


def test_load_annotations_long_aliases_and_repeats():
    ann = load_annotations([{"pair_id": 1, "rater": "r1", "preference": "a-is-slightly-better", "shown_order": "ba"},
                            {"pair_id": 1, "rater": "r1", "preference": "b", "shown_order": "ab"}])
    assert ann.df.select("pair_id", "annotator_id", "score", "shown_order").rows() == [("1", "r1", -1.0, "ab")]
    assert ann.quarantine["reason"].to_list() == ["repeated_rating"]


# ---- prompts --------------------------------------------------------------------------------
def test_load_prompts(tmp_path):
    path = _write_jsonl(tmp_path / "t.jsonl", [{"prompt": "a", "split": "x"}, {"prompt": "b", "split": "y"},
                                               {"prompt": "a", "split": "z"}])
    df = load_prompts(path)
    assert df.columns == ["prompt_id", "prompt", "split"]
    h = hashlib.sha1(b"a").hexdigest()[:16]
    assert df["prompt_id"].to_list() == [h, hashlib.sha1(b"b").hexdigest()[:16], h + "-2"]
    assert load_prompts([{"question": "q", "prompt_id": 7}])["prompt_id"].to_list() == ["7"]
    hh = load_prompts([{"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "\n\nHuman: hi\n\nAssistant: no"}])
    assert hh["prompt"].to_list() == ["\n\nHuman: hi\n\nAssistant:"]
    with pytest.warns(UserWarning, match="without a usable prompt"):
        assert load_prompts([{"prompt": "ok"}, {"prompt": None}]).height == 1
