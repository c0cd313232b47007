"""``prefaudit validate``: the summary, --quarantine-out, --strict, --json, exit codes, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import polars as pl
import pytest

from prefaudit.cli import main

GOOD = {"prompt": "p", "chosen": "c", "rejected": "r"}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture
def messy(tmp_path):
    path = tmp_path / "messy.jsonl"
    lines = [json.dumps(GOOD), "{not json", json.dumps({"prompt": "p", "chosen": 3, "rejected": "r"}),
             json.dumps(GOOD | {"chosen": ""}), json.dumps({"prompt": "p", "rejected": "r"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_summary_counts_and_reasons(messy, capsys):
    code, out, _ = run(["validate", str(messy)], capsys)
    assert code == 0
    assert "rows read     5" in out and "pairs         2" in out and "quarantined   3" in out
    for reason in ("invalid_json", "not_text", "missing_field"):
        assert reason in out
    assert "accounting    ok" in out


def test_strict_exits_1_only_when_something_was_quarantined(messy, tmp_path, capsys):
    assert run(["validate", str(messy), "--strict"], capsys)[0] == 1
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    assert run(["validate", str(clean), "--strict"], capsys)[0] == 0


def test_quarantine_out_and_json(messy, tmp_path, capsys):
    qpath = tmp_path / "q.csv"
    code, out, _ = run(["validate", str(messy), "--quarantine-out", str(qpath), "--json"], capsys)
    assert code == 0
    summary = json.loads(out)
    assert (summary["rows_read"], summary["pairs"], summary["quarantined"]) == (5, 2, 3)
    assert summary["quarantine_reasons"] == {"invalid_json": 1, "missing_field": 1, "not_text": 1}
    assert summary["accounting"]["ok"] is True
    q = pl.read_csv(qpath)
    assert q["row"].to_list() == [2, 3, 5]
    assert set(q["table"].to_list()) == {"pairs"} and q["source"].to_list()[0] == str(messy)


def test_annotations_and_target(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"pair_id": f"p{i}", "prompt": f"q{i}", "response_a": "a", "response_b": "b"})
                             + "\n" for i in range(3)), encoding="utf-8")
    votes = tmp_path / "votes.csv"
    votes.write_text("pair_id,annotator_id,label\np0,u,a\np0,v,b\np1,u,tie\np2,u,b\nzz,u,a\n", encoding="utf-8")
    target = tmp_path / "target.jsonl"
    target.write_text(json.dumps({"prompt": "new"}) + "\n", encoding="utf-8")
    code, out, _ = run(["validate", str(pairs), "--annotations", str(votes), "--target", str(target), "--json"],
                       capsys)
    s = json.loads(out)
    assert code == 0 and s["pairs"] == 3 and s["ties"] == 2
    assert s["annotations"]["used"] == 4 and s["annotations"]["quarantine_reasons"] == {"unknown_pair_id": 1}
    assert s["accounting"]["ok"] and s["accounting"]["annotations_ok"]
    assert s["target"]["prompts"] == 1
    assert run(["validate", str(pairs), "--annotations", str(votes), "--strict"], capsys)[0] == 1


@pytest.mark.parametrize("content,expect", [
    ("", ["empty.jsonl", "file is empty"]),
    ('{"prompt": "p", "chosen": "c", "rejectd": "r"}\n', ["empty.jsonl", "'rejected'"]),
])
def test_unusable_input_exits_2_with_one_line(tmp_path, capsys, content, expect):
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    code, out, err = run(["validate", str(path)], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("prefaudit: error:")
    for piece in expect:
        assert piece in err


def test_strict_load_errors_name_line_and_column(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,chosen,rejected\np,c,r\np,c\n", encoding="utf-8")
    code, _, err = run(["validate", str(path), "--format", "nonsense"], capsys)
    assert code == 2 and "unknown format" in err
    code, _, err = run(["validate", str(path), "--column", "oops"], capsys)
    assert code == 2 and "KEY=VALUE" in err


def test_validate_imports_no_heavy_libraries(messy):
    code = textwrap.dedent(f"""
        import sys, time
        t = time.perf_counter()
        from prefaudit.cli import main
        t_import = time.perf_counter() - t
        try:
            main(["validate", {str(messy)!r}])
        except SystemExit as e:
            assert e.code == 0, e.code
        heavy = [m for m in ("torch", "transformers", "sentence_transformers", "sklearn", "scipy", "matplotlib")
                 if m in sys.modules]
        print(heavy, t_import, file=sys.stderr)
        sys.exit(1 if heavy else 0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
