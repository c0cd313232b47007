"""``prefaudit report``: from DATA or --audit, --config banner, --ablation, --pairs-out, exit codes."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest
from report_fixtures import make_audit

from prefaudit.cli import main


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def audit_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "audit.json"
    make_audit(40, hostile=True).to_json(path)
    return path


def test_report_from_audit_json_with_gate_and_ablation(audit_json, tmp_path, capsys):
    gate = tmp_path / "gate.toml"
    gate.write_text('[metrics."noise.estimated_rate"]\nmax = 0.05\n', encoding="utf-8")
    abl = tmp_path / "abl"
    abl.mkdir()
    (abl / "ablation.json").write_text(json.dumps({
        "arms": {"raw": {"n_pairs": 40, "mean": {"acc": 0.6}, "ci": {"acc": [0.5, 0.7]}}},
        "differences": []}), encoding="utf-8")
    out = tmp_path / "r.html"
    code, stdout, _ = run(["report", "--audit", str(audit_json), "-o", str(out), "--config", str(gate),
                           "--ablation", str(abl), "--max-pairs", "3"], capsys)
    assert code == 0 and f"report written to {out}" in stdout  # a failed gate is not report's business
    html = out.read_text(encoding="utf-8")
    assert re.search(r'id="verdict">fail<', html) and 'id="ablation"' in html
    rows = json.loads(re.search(r'<script type="application/json" id="pb-data">(.*?)</script>', html, re.S)
                      .group(1))["rows"]
    assert len(rows) == 3


@pytest.mark.parametrize("argv, message", [
    (["report", "-o", "x.html"], "give either DATA or --audit"),
    (["report", "data.jsonl", "--audit", "AUDIT", "-o", "x.html"], "give either DATA or --audit"),
    (["report", "--audit", "AUDIT", "--max-pairs", "-1"], "--max-pairs must be >= 0"),
    (["report", "--audit", "AUDIT", "--pairs-out", "p.parquet"], "--pairs-out needs DATA"),
    (["report", "--audit", "AUDIT", "--ablation", "missing-dir"], "ablation results not found"),
    (["report", "--audit", "missing.json"], "audit file not found"),
])
def test_usage_and_input_errors_exit_2(argv, message, audit_json, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(audit_json) if a == "AUDIT" else a for a in argv]
    code, _, err = run(argv, capsys)
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "audit.html").exists()


def test_report_from_data_writes_pairs_out(tmp_path, capsys):
    from prefaudit import synth

    data = tmp_path / "pairs.jsonl"
    synth.make(60, n_target=10, n_eval=10).write(data)
    out, pairs = tmp_path / "r.html", tmp_path / "pairs.parquet"
    code, _, _ = run(["report", str(data), "-o", str(out), "--no-embeddings", "--pairs-out", str(pairs),
                      "--quiet"], capsys)
    assert code == 0
    html = out.read_text(encoding="utf-8")
    assert str(pairs) in html and "Label noise" in html and "pairs.jsonl" in html
    table = pl.read_parquet(pairs)
    assert table.height == 60 and "noise_score" in table.columns
