"""The audit with the real analyzers: every analyzer runs when its inputs are there, the JSON is
byte-identical for a fixed seed (timings apart), the no-embeddings path, and real data (hh-rlhf)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import prefaudit
from prefaudit import synth
from prefaudit.audit import CONTRACT_METRICS, DEFAULT_ANALYZERS, Audit
from prefaudit.gate import gate


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic multi-annotator data (generator defaults, 4 annotators) written as files."""
    d = tmp_path_factory.mktemp("multi")
    synth.make(200, n_annotators=4, n_target=100, n_eval=100, seed=1).write(d)
    return d


def _json_without_timings(a: Audit) -> str:
    d = json.loads(a.to_json())
    d.pop("timings")
    return json.dumps(d)


def test_every_analyzer_runs_and_json_is_deterministic(multi: Path) -> None:
    kw = dict(annotations=multi / "annotations.jsonl", target=multi / "target.jsonl", eval=multi / "eval.jsonl",
              tokenizer="tiny", max_length=64, by="topic", seed=3)
    a = prefaudit.audit(multi / "pairs.jsonl", **kw)
    assert list(a.results) == list(DEFAULT_ANALYZERS) and a.skipped == {}
    for name in CONTRACT_METRICS:
        assert a.metrics[name].value is not None, (name, a.metrics[name].note)
    assert a.metrics["agreement.n_annotators"].value == 4
    assert set(a.breakdowns) == {"coverage_cluster", "topic"}
    for col in ("hygiene", "agreement", "noise", "bias", "coverage", "truncation"):
        assert {f"{col}_score", f"{col}_flag"} <= set(a.pairs.columns)
    b = prefaudit.audit(multi / "pairs.jsonl", **kw)
    assert _json_without_timings(a) == _json_without_timings(b)
    assert a.to_json() != b.to_json() or a.timings == b.timings  # only timings may differ
    # the notebook repr and the plot come from the parts
    assert "agreement" in a._repr_html_() and a.plot() is not None


def test_no_embeddings_path(multi: Path) -> None:
    a = prefaudit.audit(multi / "pairs.jsonl", annotations=multi / "annotations.jsonl",
                        target=multi / "target.jsonl", embeddings=False)
    assert a.config["embeddings"] is False and a.config["embedding_model"] is None
    assert "embeddings" in a.skipped["coverage"]
    assert "tokenizer" in a.skipped["truncation"]
    assert {"hygiene", "agreement", "noise", "bias"} <= {k for k, r in a.results.items() if not r.skipped}
    for name in ("hygiene.exact_duplicate_share", "hygiene.contradiction_share", "agreement.krippendorff_alpha",
                 "noise.estimated_rate", "length.chosen_longer_rate", "shortcut.auroc"):
        assert a.metrics[name].value is not None, name
    assert a.metrics["coverage.target_ood_share"].value is None
    assert "coverage skipped" in a.metrics["coverage.target_ood_share"].note


@pytest.mark.realdata
def test_hh_rlhf_audit_and_default_gate(hh_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = prefaudit.audit(hh_path, embeddings=False)
    assert a.input["rows_read"] == 2312 and a.input["pairs"] == 2312 and a.input["quarantined"] == 0
    assert a.metrics["hygiene.empty_response_share"].value == pytest.approx(4 / 2312)
    cl = a.metrics["length.chosen_longer_rate"]
    assert 0.40 < cl.value < 0.48 and cl.ci[1] < 0.5
    r = gate(a)
    checks = {row["metric"]: row for row in r.checks.iter_rows(named=True)}
    with capsys.disabled():
        shown = {k: (v["status"], v["value"]) for k, v in checks.items() if v["status"] != "skip"}
        print(f"\nhh-rlhf harmless test, default gate, --no-embeddings: {r.verdict}; {shown}")
    # the facts the data README states are judged as such by the default thresholds
    assert checks["hygiene.empty_response_share"]["value"] == pytest.approx(4 / 2312)
    assert checks["hygiene.empty_response_share"]["status"] == "pass"
    assert checks["length.chosen_longer_rate"]["status"] == "pass"
    # refusals win on hh harmless: the chosen response is reliably the shorter one -> a length warning
    assert checks["length.log_ratio_coef"]["status"] == "warn" and checks["length.log_ratio_coef"]["value"] < -0.3
    assert r.verdict == "warn"
    assert checks["agreement.krippendorff_alpha"]["status"] == "skip"  # no annotators recorded


def test_model_analyzers_sampled_above_max_model_pairs() -> None:
    data = synth.make(400, seed=2).pairs
    a = prefaudit.audit(data, analyzers=["hygiene", "bias"], embeddings=False, max_model_pairs=150, seed=5)
    bias = a.pairs["bias_score"]
    assert bias.null_count() == 250 and a.pairs["hygiene_score"].null_count() == 0  # hygiene sees every pair
    assert a.results["bias"].config["sample"] == {"pairs": 150, "of": 400}
    m = a.metrics["length.chosen_longer_rate"]
    assert m.n == 150 and "random sample of 150 of 400 pairs" in m.note
    sampled = data.sample(150, seed=5)
    assert set(a.pairs.filter(bias.is_not_null())["pair_id"]) == set(sampled.pair_ids)
    full = prefaudit.audit(data, analyzers=["bias"], embeddings=False, max_model_pairs=None)
    assert full.pairs["bias_score"].null_count() == 0 and full.metrics["length.chosen_longer_rate"].n == 400
