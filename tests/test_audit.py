"""Audit orchestration with stand-in analyzers: skipping, the per-pair join, breakdowns, the JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from prefaudit.analyzers.base import AnalyzerResult, AuditContext, Metric
from prefaudit.audit import CONTRACT_METRICS, EXAMPLE_TEXT_CHARS, Audit, audit, rank_suspicious
from prefaudit.data.preference_set import PreferenceSet, SourceInfo
from prefaudit.errors import ConfigError

N = 60


def _set() -> PreferenceSet:
    rows = {
        "pair_id": [f"p{i:02d}" for i in range(N)],
        "prompt": [f"prompt {i} <script>alert({i})</script>" for i in range(N)],
        "chosen": ["long chosen answer " * (1 + i % 3) if i % 4 else "short" for i in range(N)],
        "rejected": ["mid rejected text " * 2 for _ in range(N)],
        "source": ["web" if i % 3 else "books" for i in range(N)],
    }
    rows["chosen"][0] = "x" * 5000  # longer than the example text limit
    return PreferenceSet(pl.DataFrame(rows), source=SourceInfo(path="<b>mem</b>", sha256="abc", rows_read=N + 2),
                         quarantine=pl.DataFrame({"source": ["f", "f"], "row": [3, 9], "reason": ["bad_json"] * 2,
                                                  "detail": [None, None], "record": ["{", "{"]}))


class StubNoise:
    """Flags every 5th pair; score falls with i so the ranking is known."""

    name = "noise"

    def __init__(self, rate_note: str | None = None) -> None:
        self.rate_note = rate_note

    def run(self, data: PreferenceSet, context: AuditContext | None = None) -> AnalyzerResult:
        ids = data.df["pair_id"].to_list()
        score = [0.1 + 0.001 * i if i % 5 == 0 else 0.9 for i in range(len(ids))]
        flag = [i % 5 == 0 for i in range(len(ids))]
        pairs = pl.DataFrame({"pair_id": ids, "noise_score": score, "noise_flag": flag,
                              "noise_posterior": [1 - s for s in score]})
        k = sum(flag)
        return AnalyzerResult("noise", {"noise.estimated_rate": Metric.proportion(k, len(ids)),
                                        "noise.flagged_share": Metric.proportion(k, len(ids))},
                              pairs, {"table": pl.DataFrame({"x": [1.0, float("nan")]})}, config={"seed": 0})


class StubCoverage:
    name = "coverage"

    def run(self, data: PreferenceSet, context: AuditContext | None = None) -> AnalyzerResult:
        ids = data.df["pair_id"].to_list()
        pairs = pl.DataFrame({"pair_id": ids, "coverage_score": [1.0] * len(ids),
                              "coverage_flag": [False] * len(ids), "coverage_cluster": [i % 2 for i in range(len(ids))]})
        target = pl.DataFrame({"prompt": ["t1", "t2"], "ood_score": [0.1, 0.9], "ood_flag": [False, True],
                               "cluster": [0, 1], "extra": [1, 2]})
        return AnalyzerResult("coverage", {"coverage.n_clusters": Metric.count(2)}, pairs, {"target": target})


def _run(**kw) -> Audit:
    return audit(_set(), analyzers=[StubNoise(), StubCoverage(), "agreement", "truncation"], embeddings=False,
                 by="source", **kw)


def test_contract_metrics_and_skips() -> None:
    a = _run()
    assert set(CONTRACT_METRICS) <= set(a.metrics)
    assert a.metrics["data.pairs"].value == N and a.metrics["data.quarantined"].value == 2
    assert a.metrics["noise.estimated_rate"].value == pytest.approx(12 / 60)
    # analyzers whose inputs are missing are skipped with a reason (and their modules never needed)
    assert "annotations" in a.skipped["agreement"] and "tokenizer" in a.skipped["truncation"]
    assert a.metrics["agreement.krippendorff_alpha"].value is None
    assert "agreement skipped" in a.metrics["agreement.krippendorff_alpha"].note
    assert "not run" in a.metrics["hygiene.exact_duplicate_share"].note
    assert a.input == {"path": "<b>mem</b>", "sha256": "abc", "format": None, "rows_read": N + 2, "pairs": N,
                       "quarantined": 2, "annotations": 0, "annotations_quarantined": 0}


def test_pairs_table_join() -> None:
    a = _run()
    t = a.to_polars()
    assert t["pair_id"].to_list() == _set().pair_ids
    assert {"noise_score", "noise_flag", "noise_posterior", "coverage_cluster"} <= set(t.columns)
    assert t["noise_flag"].sum() == 12


def test_breakdowns_match_direct_counts() -> None:
    a = _run()
    df = _set().df.with_row_index("i")
    by = a.breakdowns["source"].sort("group")
    for row in by.iter_rows(named=True):
        sub = df.filter(pl.col("source") == row["group"])
        flags = sum(1 for i in sub["i"] if i % 5 == 0)
        longer = sum(len(c) > len(r) for c, r in zip(sub["chosen"], sub["rejected"], strict=True))
        assert row["n"] == sub.height
        assert row["noise_flag_share"] == pytest.approx(flags / sub.height)
        assert row["chosen_longer_rate"] == pytest.approx(longer / sub.height)
        assert row["noise_flag_share_ci_lo"] <= row["noise_flag_share"] <= row["noise_flag_share_ci_hi"]
        wrong = [0.9 - 0.001 * i if i % 5 == 0 else 0.1 for i in sub["i"]]  # 1 - the stub's noise_score
        assert row["noise_rate"] == pytest.approx(sum(wrong) / len(wrong))
        assert row["noise_rate_ci_lo"] < row["noise_rate"] < row["noise_rate_ci_hi"]
    clusters = a.breakdowns["coverage_cluster"].sort("group")
    assert clusters["group"].to_list() == ["0", "1"] and clusters["n"].to_list() == [30, 30]
    # even pairs: i % 5 == 0 for i in 0,10,...,50 -> 6 of 30
    assert clusters["noise_flag_share"].to_list() == pytest.approx([0.2, 0.2])


def test_json_contract_roundtrip_and_determinism(tmp_path: Path) -> None:
    a, b = _run(), _run()
    ja, jb = json.loads(a.to_json()), json.loads(b.to_json())
    ja.pop("timings"), jb.pop("timings")
    assert json.dumps(ja) == json.dumps(jb)
    d = a.to_dict()
    assert list(d)[:5] == ["schema_version", "prefaudit_version", "input", "config", "metrics"]
    assert list(d)[-1] == "timings" and "verdict" not in d and "checks" not in d
    for name in CONTRACT_METRICS:
        assert set(d["metrics"][name]) >= {"value", "ci", "n", "note"}
    assert d["skipped"] == {"agreement": a.skipped["agreement"], "truncation": a.skipped["truncation"]}
    assert d["analyzers"]["noise"]["details"]["table"] == [{"x": 1.0}, {"x": None}]  # NaN -> null
    # examples: flagged pairs only, most suspicious (lowest score) first, texts cut to 2,000 chars
    ex = d["examples"]
    assert [e["pair_id"] for e in ex] == [f"p{i:02d}" for i in range(0, N, 5)]
    assert len(ex[0]["chosen"]) == EXAMPLE_TEXT_CHARS and ex[0]["flags"] == ["noise"]
    assert ex[0]["prompt"].startswith("prompt 0 <script>")
    path = tmp_path / "audit.json"
    a.to_json(path)
    back = Audit.from_json(path)
    assert back.metrics == a.metrics
    assert back.results["noise"].details["table"].height == 2
    assert back.skipped == a.skipped
    assert back.examples is not None and back.examples.height == 12
    assert back.breakdowns["source"].height == 2
    # a re-serialised audit keeps its examples and metrics
    again = json.loads(back.to_json())
    assert again["metrics"] == d["metrics"] and again["examples"] == d["examples"]


def test_write_pairs_and_target(tmp_path: Path) -> None:
    a = _run()
    a.write_pairs(tmp_path / "pairs.parquet")
    a.write_pairs(tmp_path / "pairs.csv")
    assert pl.read_parquet(tmp_path / "pairs.parquet").equals(a.pairs)
    assert pl.read_csv(tmp_path / "pairs.csv")["noise_flag"].sum() == 12
    with pytest.raises(ConfigError):
        a.write_pairs(tmp_path / "pairs.txt")
    a.write_target(tmp_path / "target.csv")
    t = pl.read_csv(tmp_path / "target.csv")
    assert t.columns == ["prompt", "ood_score", "ood_flag", "cluster"] and t["ood_flag"].to_list() == [False, True]


def test_repr_html_escapes() -> None:
    html = _run()._repr_html_()
    assert "<b>mem</b>" not in html and "&lt;b&gt;mem&lt;/b&gt;" in html
    assert "<script>" not in html and "noise" in html


def test_rank_suspicious_orders_by_flags_then_score() -> None:
    t = pl.DataFrame({"pair_id": ["a", "b", "c", "d"], "x_score": [0.9, 0.2, 0.3, None],
                      "x_flag": [False, True, True, None], "y_flag": [False, False, True, False]})
    r = rank_suspicious(t, 10)
    assert r["pair_id"].to_list() == ["c", "b"] and r["flags"].to_list() == [["x", "y"], ["x"]]


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="--by column 'nope'"):
        audit(_set(), analyzers=[StubNoise()], embeddings=False, by="nope")
    with pytest.raises(ConfigError, match="unknown analyzer"):
        audit(_set(), analyzers=["spelling"], embeddings=False)
    with pytest.raises(ConfigError, match="unknown analyzer"):
        audit(_set(), analyzers=[StubNoise()], config={"spelling": {}}, embeddings=False)


def test_public_api_callable_after_module_imports() -> None:
    import prefaudit
    import prefaudit.audit
    import prefaudit.clean
    import prefaudit.gate  # each import binds the package attribute to the module

    a = prefaudit.audit(_set(), analyzers=[StubNoise()], embeddings=False)
    assert isinstance(a, Audit) and prefaudit.audit.Audit is Audit
    assert prefaudit.gate(a, {"metrics": {"noise.estimated_rate": {"max": 0.1}}}).verdict == "fail"
    assert prefaudit.clean(a).counts["pairs_in"] == N


def test_no_embeddings_audit_imports_no_heavy_libraries(sample_data: Path, tmp_path: Path) -> None:
    """The fast path stays light: a fresh ``prefaudit audit --no-embeddings`` process imports no torch,
    transformers, scikit-learn, scipy.stats, cleanlab, statsmodels, pandas or matplotlib (together
    several seconds of imports before any work), and still writes every contract metric."""
    import subprocess
    import sys
    import textwrap

    out = tmp_path / "a.json"
    code = textwrap.dedent(f"""
        import sys
        from prefaudit.cli import main
        try:
            main(["audit", {str(sample_data / "pairs.jsonl")!r}, "--no-embeddings", "--json", {str(out)!r}, "-q"])
        except SystemExit as e:
            assert e.code == 0, e.code
        heavy = [m for m in ("torch", "transformers", "sentence_transformers", "sklearn", "scipy.stats", "cleanlab",
                             "statsmodels", "pandas", "matplotlib") if m in sys.modules]
        print(heavy, file=sys.stderr)
        sys.exit(1 if heavy else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads(out.read_text())["metrics"]
    assert set(CONTRACT_METRICS) <= set(metrics)
    assert metrics["noise.estimated_rate"]["value"] is not None
