"""The CLI round trip on synthetic data (generator defaults; the 30% flips are the one named knob).

audit -> JSON with every contract metric; gate passes clean data and fails noisy data with the default
thresholds, ``gate --audit`` agrees with ``gate DATA``, ``--baseline`` fails on a planted regression;
clean removes the injected flips (precision/recall reported) with a manifest that accounts for every
pair; the review export round-trips through ``prefaudit.load_annotations``; bad input exits 2 with a
one-line message. Commands run in-process (``prefaudit.cli.main``) apart from two real subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from prefaudit import synth
from prefaudit.audit import CONTRACT_METRICS
from prefaudit.cli import main
from prefaudit.data.load import load, load_annotations

N = 2000  # the generator's default size
ROOT = Path(__file__).resolve().parents[1]


def cli(*argv: object) -> int:
    """Run ``prefaudit argv...`` in-process; return its exit code."""
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("roundtrip")
    synth.make(seed=0).write(d / "clean")  # generator defaults
    synth.make(flip_rate=0.3, seed=0).write(d / "noisy")  # + 30% random flips
    paths = {"dir": d, "clean": d / "clean" / "pairs.jsonl", "noisy": d / "noisy" / "pairs.jsonl",
             "target": d / "clean" / "target.jsonl", "truth": d / "noisy" / "truth.jsonl"}
    # the audits every test below reads (embeddings on: the default)
    paths["clean_audit"] = d / "clean_audit.json"
    paths["noisy_audit"] = d / "noisy_audit.json"
    assert cli("audit", paths["clean"], "--target", paths["target"], "--json", paths["clean_audit"],
               "--pairs-out", d / "pairs.parquet", "--target-out", d / "target_out.csv", "--quiet") == 0
    assert cli("audit", paths["noisy"], "--json", paths["noisy_audit"], "--quiet") == 0
    return paths


def test_audit_json_has_every_contract_metric(work: dict[str, Path]) -> None:
    d = json.loads(work["clean_audit"].read_text())
    assert d["schema_version"] and d["prefaudit_version"]
    assert d["input"]["pairs"] == N and d["input"]["rows_read"] == N and d["input"]["quarantined"] == 0
    assert len(d["input"]["sha256"]) == 64
    for name in CONTRACT_METRICS:
        m = d["metrics"][name]
        assert set(m) >= {"value", "ci", "n", "note"}, name
        assert m["value"] is not None or m["note"], name
    # defined here: everything but agreement (no annotations)
    for name in CONTRACT_METRICS:
        if not name.startswith("agreement."):
            assert d["metrics"][name]["value"] is not None, name
    assert d["skipped"] == {"agreement": d["skipped"]["agreement"],
                            "truncation": d["skipped"]["truncation"]}
    assert "checks" not in d and "verdict" not in d
    pairs = pl.read_parquet(work["dir"] / "pairs.parquet")
    assert pairs.height == N
    for a in ("hygiene", "noise", "bias", "coverage"):
        assert {f"{a}_score", f"{a}_flag"} <= set(pairs.columns)
    target = pl.read_csv(work["dir"] / "target_out.csv")
    assert target.columns == ["prompt", "ood_score", "ood_flag", "cluster"] and target.height > 0


def test_gate_clean_passes_noisy_fails(work: dict[str, Path]) -> None:
    assert cli("gate", "--audit", work["clean_audit"], "--quiet") == 0
    assert cli("gate", "--audit", work["noisy_audit"], "--quiet", "--json", work["dir"] / "g.json") == 1
    g = json.loads((work["dir"] / "g.json").read_text())
    assert g["verdict"] == "fail"
    failed = {c["metric"] for c in g["checks"] if c["status"] == "fail"}
    assert "noise.estimated_rate" in failed


def test_gate_audit_agrees_with_gate_data(work: dict[str, Path]) -> None:
    """``gate DATA`` audits and judges in one go; its verdict equals ``gate --audit`` of the same audit."""
    out = work["dir"] / "gate_data.json"
    rc = cli("gate", work["noisy"], "--json", out, "--quiet")
    via_audit = work["dir"] / "gate_audit.json"
    assert cli("gate", "--audit", work["noisy_audit"], "--json", via_audit, "--quiet") == rc == 1
    a, b = json.loads(out.read_text()), json.loads(via_audit.read_text())
    assert a["verdict"] == b["verdict"] == "fail"
    assert a["checks"] == b["checks"] and a["metrics"] == b["metrics"]


def test_baseline_regression(work: dict[str, Path], tmp_path: Path) -> None:
    cfg = tmp_path / "regress.toml"
    cfg.write_text('[regression."noise.estimated_rate"]\nmax_worsening = 0.05\n')
    assert cli("gate", "--audit", work["clean_audit"], "--config", cfg, "--baseline", work["clean_audit"],
               "--quiet") == 0
    out = tmp_path / "r.json"
    assert cli("gate", "--audit", work["noisy_audit"], "--config", cfg, "--baseline", work["clean_audit"],
               "--json", out, "--quiet") == 1
    checks = json.loads(out.read_text())["checks"]
    assert [(c["kind"], c["metric"], c["status"]) for c in checks] == [
        ("regression", "noise.estimated_rate", "fail")]


def test_clean_removes_injected_flips(work: dict[str, Path], capsys: pytest.CaptureFixture) -> None:
    d = work["dir"]
    rc = cli("clean", work["noisy"], "--out", d / "cleaned.jsonl", "--manifest", d / "removed.jsonl",
             "--review-out", d / "review.csv")
    assert rc == 0
    kept = [json.loads(x) for x in (d / "cleaned.jsonl").read_text().splitlines()]
    manifest = pl.read_ndjson(d / "removed.jsonl")
    removed = manifest.filter(pl.col("action") == "remove")
    assert set(kept[0]) == {"prompt", "chosen", "rejected"}
    assert len(kept) + removed.height == N  # every pair accounted for
    assert manifest["pair_id"].n_unique() == manifest.height
    truth = pl.read_ndjson(work["truth"])
    flipped = set(truth.filter(pl.col("flipped"))["pair_id"])
    noise_removed = set(manifest.filter(pl.col("reasons").list.contains("noise"))["pair_id"])
    hit = len(noise_removed & flipped)
    precision, recall = hit / max(1, len(noise_removed)), hit / len(flipped)
    with capsys.disabled():
        print(f"\nclean on synthetic defaults + 30% flips (n={N}): removed {len(noise_removed)} for noise, "
              f"precision {precision:.3f}, recall {recall:.3f} against {len(flipped)} injected flips")
    assert precision >= 0.8 and recall >= 0.7


def test_review_export_round_trips(work: dict[str, Path], tmp_path: Path) -> None:
    review_path = work["dir"] / "review.csv"
    if not review_path.exists():
        assert cli("clean", work["noisy"], "--out", tmp_path / "c.jsonl", "--manifest", tmp_path / "m.jsonl",
                   "--review-out", review_path, "--quiet") == 0
    review = pl.read_csv(review_path)
    assert review.columns == ["pair_id", "prompt", "response_a", "response_b", "label", "annotator_id"]
    assert review.height > 0 and review["label"].null_count() == review.height
    # a reviewer fills in the gold label (response_a is the recorded chosen response)
    truth = pl.read_ndjson(work["truth"]).select("pair_id", "gold_chosen", "gold_rejected", "flipped")
    filled = review.join(truth, on="pair_id", how="left").with_columns(
        pl.when(pl.col("gold_chosen") > pl.col("gold_rejected")).then(pl.lit("a"))
        .when(pl.col("gold_chosen") < pl.col("gold_rejected")).then(pl.lit("b")).otherwise(pl.lit("tie"))
        .alias("label"), pl.lit("reviewer-1").alias("annotator_id"))
    filled_path = tmp_path / "filled.csv"
    filled.select(review.columns).write_csv(filled_path)
    ann = load_annotations(filled_path)
    assert ann.quarantine.height == 0 and len(ann) == review.height
    got = dict(zip(ann.df["pair_id"], ann.df["label"], strict=True))
    assert got == dict(zip(filled["pair_id"], filled["label"], strict=True))
    # the same file also serves as pairs: the re-labeled set's chosen is the gold-better response
    pairs_path = tmp_path / "review_pairs.csv"
    review.select("pair_id", "prompt", "response_a", "response_b").write_csv(pairs_path)
    relabeled = load(pairs_path, annotations=filled_path)
    flipped = set(filled.filter(pl.col("flipped"))["pair_id"])
    sides = dict(zip(relabeled.df["pair_id"], relabeled.df["chosen_side"], strict=True))
    assert flipped and all(sides[p] == "b" for p in flipped)


@pytest.mark.parametrize("case", ["missing_data", "missing_config", "malformed", "unknown_metric"])
def test_bad_input_exits_2_with_one_line(case: str, work: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "gate.toml"
    if case == "missing_data":
        argv = ["gate", tmp_path / "absent.jsonl"]
    elif case == "missing_config":
        argv = ["gate", "--audit", work["clean_audit"], "--config", tmp_path / "absent.toml"]
    elif case == "malformed":
        cfg.write_text('[metrics."noise.estimated_rate"\nmax = 0.1\n')
        argv = ["gate", "--audit", work["clean_audit"], "--config", cfg]
    else:
        cfg.write_text('[metrics."noise.estimated_rte"]\nmax = 0.1\n')
        argv = ["gate", "--audit", work["clean_audit"], "--config", cfg]
    capsys.readouterr()
    assert cli(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("prefaudit: error:")
    expect = {"missing_data": "absent.jsonl", "missing_config": "absent.toml", "malformed": "malformed TOML",
              "unknown_metric": "noise.estimated_rte"}[case]
    assert expect in err[0]


def test_real_processes(work: dict[str, Path], tmp_path: Path) -> None:
    """Two true subprocesses: the exit codes reach the shell."""
    env = {**os.environ, "CI": "1"}
    r = subprocess.run([sys.executable, "-m", "prefaudit", "gate", "--audit", str(work["noisy_audit"])],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 1 and "FAIL" in r.stdout
    r = subprocess.run([sys.executable, "-m", "prefaudit", "audit", str(tmp_path / "nope.jsonl"), "--json",
                        str(tmp_path / "a.json")], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "nope.jsonl" in r.stderr
