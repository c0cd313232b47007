"""Hand-made audits for the report tests: real Audit/AnalyzerResult objects, with hostile strings on demand.

Hostile payloads sit in every place dataset text can reach the report: prompts, responses, pair ids,
metadata, reason codes, detail tables (cluster names) and plot labels.
"""

from __future__ import annotations

import polars as pl

from prefaudit.analyzers.base import AnalyzerResult, Metric
from prefaudit.audit import Audit, assemble_metrics, join_pairs, rank_suspicious
from prefaudit.data.preference_set import PreferenceSet, SourceInfo
from prefaudit.plots import new_figure, register_plot

#: Payloads that must stay text. U+202E (RIGHT-TO-LEFT OVERRIDE) is shown as a visible mark.
PAYLOADS = [
    "<script>window.__pwned=1;alert(1)</script>",
    "<img src=x onerror=\"window.__pwned=2;alert(2)\">",
    "</textarea><b id=injected>bold</b>",
    "</script><script>window.__pwned=3;alert(3)</script>",
    "<a href=\"javascript:alert(4)\">click me</a>",
    "javascript:alert(5)",
    "abc\u202eevil.exe",
    "]]><!-- --><svg onload=alert(6)>",
    "{{ 7*7 }} ${alert(8)} &amp; &lt;b&gt;",
]
CLUSTER_TEST_PLOT = "report_test_clusters"


@register_plot(CLUSTER_TEST_PLOT)
def _cluster_plot(result: AnalyzerResult):
    """A bar chart whose tick labels are dataset strings (cluster names) — as coverage's would be."""
    t = result.details["clusters"]
    fig = new_figure(6, 3)
    ax = fig.add_subplot()
    ax.barh(range(t.height), t["size"].to_list())
    ax.set_yticks(range(t.height), t["name"].to_list())
    ax.set_title(t["name"][0])
    return fig


def pair_texts(n: int, hostile: bool) -> pl.DataFrame:
    rows = []
    for i in range(n):
        p = PAYLOADS[i % len(PAYLOADS)] if hostile else ""
        rows.append({
            "pair_id": f"{p}id-{i:04d}" if hostile and i < len(PAYLOADS) else f"id-{i:04d}",
            "prompt": f"Question {i}: how do I bake bread? {p}" + (" long" * 400 if i == 5 else ""),
            "chosen": f"Knead, rise, bake. {p}",
            "rejected": f"I can't help. {p}" if i % 3 else f"{p}",
            "source": f"src {p}" if hostile else "web",
        })
    return pl.DataFrame(rows)


def make_audit(n: int = 60, hostile: bool = False, with_data: bool = True) -> Audit:
    """An audit of ``n`` pairs from hand-made analyzer results (hygiene, noise, bias, coverage, agreement)."""
    df = pair_texts(n, hostile)
    data = PreferenceSet(df, source=SourceInfo(path="pairs <b>.jsonl" if hostile else "pairs.jsonl",
                                               sha256="ab" * 32, rows_read=n, format="flat"))
    ids = df["pair_id"]
    idx = pl.Series(range(n))
    noise_score = (idx * 37 % 101) / 100.0
    reasons = [[PAYLOADS[i % len(PAYLOADS)] if hostile else "exact_duplicate"] if i % 5 == 0 else
               (["empty_response"] if i % 7 == 0 else []) for i in range(n)]
    hygiene = AnalyzerResult(
        "hygiene", metrics={"hygiene.exact_duplicate_share": Metric.proportion(n // 5, n),
                            "hygiene.empty_response_share": Metric.proportion(2, n)},
        pairs=pl.DataFrame({"pair_id": ids, "hygiene_score": [0.0 if r else 1.0 for r in reasons],
                            "hygiene_flag": [bool(r) for r in reasons],
                            "hygiene_reasons": pl.Series(reasons, dtype=pl.List(pl.Utf8))}),
        details={"counts": pl.DataFrame({"reason": ["exact_duplicate", "empty_response"], "pairs": [n // 5, 2]})})
    noise = AnalyzerResult(
        "noise", metrics={"noise.estimated_rate": Metric(0.12, (0.08, 0.16), n, method="bootstrap"),
                          "noise.flagged_share": Metric.proportion(int((noise_score < 0.2).sum()), n)},
        pairs=pl.DataFrame({"pair_id": ids, "noise_score": noise_score, "noise_flag": noise_score < 0.2}),
        details={"method": "surface-feature model", "by_source": {"web": 0.1}})
    names = [f"cluster {PAYLOADS[i % len(PAYLOADS)]}" if hostile else f"cluster {i}" for i in range(5)]
    coverage = AnalyzerResult(
        CLUSTER_TEST_PLOT, metrics={"coverage.n_clusters": Metric.count(5)},
        details={"clusters": pl.DataFrame({"name": names, "size": [10, 8, 6, 4, 2],
                                           "example_target": [f"target prompt {s}" for s in names]})})
    bias = AnalyzerResult("bias", metrics={"length.chosen_longer_rate": Metric.proportion(n // 2, n),
                                           "shortcut.auroc": Metric(0.61, (0.55, 0.67), n, method="bootstrap")},
                          details={"length_bins": [{"bin": "<-100", "win_rate": 0.4, "n": 10},
                                                   {"bin": ">100", "win_rate": 0.7, "n": 12}]})
    results = {"hygiene": hygiene, "agreement": AnalyzerResult.skip("agreement", "no annotations given (--annotations)"),
               "noise": noise, "bias": bias, CLUSTER_TEST_PLOT: coverage}
    pairs = join_pairs(df.select("pair_id"), results.values())
    audit = Audit(metrics=assemble_metrics(data, results), results=results, pairs=pairs,
                  input={"path": data.source.path, "sha256": data.source.sha256, "rows_read": n, "pairs": n,
                         "quarantined": 0},
                  config={"seed": 0, "note": PAYLOADS[0] if hostile else "plain"}, seed=0, data=data)
    if not with_data:
        return Audit.from_dict(audit.to_dict())
    return audit


def flagged_ids(audit: Audit) -> list[str]:
    return rank_suspicious(audit.pairs, None).filter(pl.col("n_flags") > 0)["pair_id"].to_list()
