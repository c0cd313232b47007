"""Hostile and random inputs: every outcome is a pair, a quarantined record with a reason, or a typed error.

Each case of issue 2 item 5 has a test here: malformed JSON lines, missing or misnamed columns,
non-string values, bad encodings, an empty file, a 50 MB single field, duplicate pair ids. The
property-based tests (hypothesis) throw random records, random bytes and random mixes of good and
broken lines at the loaders.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap

import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefaudit.data.fields import REASONS
from prefaudit.data.load import load, load_annotations, load_prompts
from prefaudit.errors import InputError, PrefauditError

GOOD = {"prompt": "p", "chosen": "c", "rejected": "r"}


def _lines(path, *lines: bytes | str):
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


def _accounted(ps) -> None:
    assert ps.source.rows_read == len(ps) + ps.quarantine.height
    assert set(ps.quarantine["reason"].to_list()) <= set(REASONS)


def _reasons(ps) -> dict[int, str]:
    return dict(zip(ps.quarantine["row"].to_list(), ps.quarantine["reason"].to_list(), strict=True))


# ---- malformed JSON -------------------------------------------------------------------------
def test_malformed_json_lines_are_quarantined_with_line_numbers(tmp_path):
    path = _lines(tmp_path / "m.jsonl", json.dumps(GOOD), '{"prompt": "p", "chosen": ', "", "[1, 2]", '"text"',
                  json.dumps(GOOD | {"prompt": "q"}), "{" * 100_000)
    ps = load(path)
    _accounted(ps)
    assert len(ps) == 2 and ps.source.rows_read == 6  # the blank line is not a record
    assert _reasons(ps) == {2: "invalid_json", 4: "not_an_object", 5: "not_an_object", 7: "invalid_json"}
    assert any("exact line-by-line" in n for n in ps.source.notes)


def test_malformed_json_document_is_an_input_error(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text('[{"prompt": "p",\n  "chosen": ]', encoding="utf-8")
    with pytest.raises(InputError) as e:
        load(bad)
    assert e.value.line == 2 and e.value.path == str(bad)


def test_strict_mode_names_line_and_column(tmp_path):
    path = _lines(tmp_path / "s.jsonl", json.dumps(GOOD), json.dumps({"prompt": "p", "rejected": "r"}))
    with pytest.raises(InputError) as e:
        load(path, strict=True)
    assert (e.value.path, e.value.line, e.value.column) == (str(path), 2, "chosen")


# ---- missing / misnamed columns -------------------------------------------------------------
def test_missing_field_in_some_rows_and_absent_from_the_whole_file(tmp_path):
    ps = load(_lines(tmp_path / "a.jsonl", json.dumps(GOOD), json.dumps({"prompt": "p", "chosen": "c"}),
                     json.dumps(GOOD | {"rejected": None})))
    assert _reasons(ps) == {2: "missing_field", 3: "missing_field"}
    _accounted(ps)
    path = _lines(tmp_path / "b.jsonl", json.dumps({"prompt": "p", "chosen": "c", "rejectd": "r"}))
    with pytest.raises(InputError) as e:
        load(path)
    assert e.value.path == str(path) and e.value.column == "rejected"
    with pytest.raises(InputError) as e:
        load(path, format="flat")
    assert e.value.column == "rejected"
    with pytest.raises(InputError, match="absent"):
        load([{"a": 1}], columns={"prompt": "question"})


def test_fast_path_reports_physical_line_numbers(tmp_path):
    path = tmp_path / "blank.jsonl"
    path.write_bytes(b"\r\n" + json.dumps(GOOD).encode() + b"\r\n\r\n  \n"
                     + json.dumps({"prompt": "p", "chosen": None, "rejected": "r"}).encode() + b"\r\n")
    ps = load(path)
    assert not any("exact" in n for n in ps.source.notes)  # polars read it
    assert _reasons(ps) == {5: "missing_field"} and ps.source.rows_read == 2


def test_required_annotation_column_absent():
    with pytest.raises(InputError) as e:
        load_annotations([{"pair_id": "1", "label": "a"}])
    assert e.value.column == "annotator_id"


# ---- non-string values ----------------------------------------------------------------------
@pytest.mark.parametrize("value,reason", [(3, "not_text"), (2.5, "not_text"), (True, "not_text"),
                                          ([1, 2], "not_text"), ({"k": "v"}, "not_text"), (None, "missing_field")])
def test_non_string_values(tmp_path, value, reason):
    recs = [GOOD, GOOD | {"chosen": value}, GOOD | {"prompt": "42"}, GOOD | {"prompt": "[x]"}]
    path = _lines(tmp_path / "n.jsonl", *(json.dumps(r) for r in recs))
    for source in (path, recs, pd.DataFrame(recs)):
        ps = load(source)
        _accounted(ps)
        assert _reasons(ps) == {2: reason}
        assert ps.df["prompt"].to_list() == ["p", "42", "[x]"]  # strings that look like numbers stay
        if source is path:  # the doubtful rows were re-read one by one, not the whole file
            assert not any("exact line-by-line" in n for n in ps.source.notes)


def test_typed_frames_with_non_text_columns():
    ps = load(pl.DataFrame({"prompt": ["p", "q"], "chosen": [1, 2], "rejected": ["r", "s"]}))
    assert ps.quarantine["reason"].to_list() == ["not_text", "not_text"] and len(ps) == 0
    _accounted(ps)


# ---- encodings ------------------------------------------------------------------------------
def test_bad_encodings(tmp_path):
    ps = load(_lines(tmp_path / "e.jsonl", json.dumps(GOOD), b'{"prompt": "p\xff\xfe", "chosen": "c", "rejected": "r"}',
                     '{"prompt": "p\\ud800", "chosen": "c", "rejected": "r"}',
                     '{"prompt": "ok \\ud83d\\ude00", "chosen": "c", "rejected": "r"}'))
    assert _reasons(ps) == {2: "bad_encoding", 3: "bad_encoding"}
    assert ps.df["prompt"].to_list() == ["p", "ok \U0001f600"]
    csv_path = tmp_path / "e.csv"
    csv_path.write_bytes(b"prompt,chosen,rejected\np,c,r\nq\xff,c,r\n")
    assert _reasons(load(csv_path)) == {3: "bad_encoding"}
    arr = tmp_path / "e.json"
    arr.write_bytes(b'[{"prompt": "p", "chosen": "c", "rejected": "r"}, {"prompt": "\xc3", "chosen": "c", "rejected": "r"}]')
    assert _reasons(load(arr)) == {2: "bad_encoding"}
    utf16 = tmp_path / "u.jsonl"
    utf16.write_bytes(json.dumps(GOOD).encode("utf-16"))
    with pytest.raises(InputError, match="UTF-16"):
        load(utf16)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\r\n")
    assert len(load(bom)) == 1


# ---- empty and unusable files ---------------------------------------------------------------
@pytest.mark.parametrize("name,content", [("e.jsonl", b""), ("b.jsonl", b"\n \n"), ("h.csv", b"prompt,chosen,rejected\n"),
                                          ("a.json", b"[]"), ("x.parquet", b"not parquet"),
                                          ("t.jsonl.gz", b"\x1f\x8b\x08\x00broken"), ("d.csv", b"a,a\n1,2\n")])
def test_unusable_files_raise_input_error_naming_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as e:
        load(path)
    assert e.value.path == str(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="directory"):
        load(tmp_path)
    with pytest.raises(InputError, match="unsupported"):
        load(42)


# ---- a 50 MB field --------------------------------------------------------------------------
def test_50mb_single_field_loads_with_sane_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    big = "word " * 10_000_000  # 50 MB
    path.write_text(json.dumps(GOOD | {"chosen": big}) + "\n" + json.dumps(GOOD) + "\n", encoding="utf-8")
    csv_path = tmp_path / "big.csv"
    csv_path.write_text(f"prompt,chosen,rejected\np,{big},r\n", encoding="utf-8")
    code = textwrap.dedent(f"""
        import resource, sys
        from prefaudit.data.load import load
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for p in ({str(path)!r}, {str(csv_path)!r}):
            ps = load(p)
            assert len(ps) >= 1 and max(ps.df["chosen"].str.len_bytes()) == 50_000_000, p
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    growth_mb = float(out.stdout.strip().splitlines()[-1])
    # a bare polars.read_ndjson of this file grows by ~210 MB; the loader adds hashing and checks
    assert growth_mb < 500, f"peak memory grew by {growth_mb:.0f} MB for a 50 MB field"


# ---- duplicate ids --------------------------------------------------------------------------
def test_duplicate_pair_ids(tmp_path):
    recs = [GOOD | {"pair_id": "x"}, GOOD | {"pair_id": "x", "chosen": "c2"}, GOOD | {"pair_id": None}]
    ps = load(_lines(tmp_path / "d.jsonl", *(json.dumps(r) for r in recs)))
    assert ps.pair_ids[:2] == ["x", "x~2"] and ps.df["source_pair_id"].to_list()[:2] == ["x", "x"]
    assert len(ps.pair_ids[2]) == 16  # the null id got a content hash
    pairs = [{"pair_id": "x", "prompt": "p", "response_a": "a", "response_b": "b"}] * 2
    with pytest.raises(InputError, match="ambiguous"):
        load(pairs, annotations=[{"pair_id": "x", "annotator_id": "u", "label": "a"}])


# ---- property-based -------------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=5), inner, max_size=3), max_leaves=6)
keys = st.sampled_from(["prompt", "chosen", "rejected", "pair_id", "response_a", "response_b", "label",
                        "annotator_id", "responses", "scores", "tie", "meta", "x", "label_x", "label_y", "model_a",
                        "model_b", "timestamp", "output_1", "output_2", "completions", "instance_index",
                        "evaluator", "preference", "completion_a", "completion_b", "shown_order"])
records = st.lists(st.dictionaries(keys, values, max_size=8), min_size=1, max_size=8)
hostile = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.filterwarnings("ignore:.*without a usable prompt")
@hostile
@given(recs=records, via=st.sampled_from(["list", "jsonl", "polars"]))
def test_random_records_never_crash(tmp_path, recs, via):
    source: object = recs
    if via == "jsonl":
        source = tmp_path / "r.jsonl"
        source.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    elif via == "polars":
        try:
            source = pl.DataFrame(recs)
        except Exception:  # polars cannot hold these values in one frame: nothing to test
            return
    for fn in (load_annotations, load_prompts):
        with contextlib.suppress(PrefauditError):
            fn(source)
    try:
        ps = load(source)
    except PrefauditError:
        return
    assert ps.source.rows_read == len(recs)
    if ps.annotations is None:
        _accounted(ps)
    else:
        assert ps.annotations.source.rows_read == len(ps.annotations) + ps.annotations.quarantine.height


@pytest.mark.filterwarnings("ignore:.*without a usable prompt")
@hostile
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".parquet", ".jsonl.gz", ""]))
def test_random_bytes_never_crash(tmp_path, data, suffix):
    path = tmp_path / f"f{suffix}"
    path.write_bytes(data)
    for fn in (load, load_annotations, load_prompts):
        with contextlib.suppress(PrefauditError):
            fn(path)


@hostile
@given(lines=st.lists(st.one_of(
    st.builds(lambda p, c, r: json.dumps({"prompt": p, "chosen": c, "rejected": r}), st.text(), st.text(), st.text()),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.sampled_from(['{"prompt": 1, "chosen": "c", "rejected": "r"}', "[]", "{}", "null", '{"prompt": "p"'])),
    min_size=1, max_size=12))
def test_random_mixes_of_good_and_broken_lines(tmp_path, lines):
    path = tmp_path / "mix.jsonl"
    data = [x if isinstance(x, bytes) else x.encode() for x in lines]
    path.write_bytes(b"\n".join(data) + b"\n")
    records = [x for x in lines if isinstance(x, str) and x.startswith('{"prompt": "') and x.endswith('"}')]
    expected = [tuple(json.loads(x).values()) for x in records if len(json.loads(x)) == 3]
    try:
        ps = load(path)
    except PrefauditError:
        assert not expected  # only possible when no line forms a pair shape at all
        return
    _accounted(ps)
    got = ps.df.select("prompt", "chosen", "rejected").rows()
    for rec in expected:
        assert rec in got
    # quarantined rows point at real, non-blank lines
    for row in ps.quarantine["row"].to_list():
        assert 1 <= row <= len(data) and data[row - 1].strip()


@hostile
@given(texts=st.lists(st.tuples(st.text(), st.text(), st.text()), min_size=1, max_size=10))
def test_random_text_round_trips_exactly_through_the_fast_path(tmp_path, texts):
    path = tmp_path / "rt.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in texts),
                    encoding="utf-8")
    ps = load(path)
    assert ps.df.select("prompt", "chosen", "rejected").rows() == texts
