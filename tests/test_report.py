"""The HTML report (no browser): contents, self-containment, escaping, the pair browser's data, ablation."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import polars as pl
import pytest
from report_fixtures import CLUSTER_TEST_PLOT, PAYLOADS, flagged_ids, make_audit

from prefaudit.analyzers.base import AnalyzerResult, Metric
from prefaudit.errors import InputError
from prefaudit.report import render_html, report
from prefaudit.report.ablation import load_ablation
from prefaudit.report.browser import EMBED_CHARS, browser_data, safe_json
from prefaudit.reprs import show_invisible


class Tags(HTMLParser):
    """Collects start tags with their attributes, and the text of <script> elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._in_script: dict | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append((self._in_script, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


def parse(html: str) -> Tags:
    t = Tags()
    t.feed(html)
    return t


@pytest.fixture(scope="module")
def hostile_html() -> str:
    return render_html(make_audit(60, hostile=True), gate={"metrics": {"noise.estimated_rate": {"max": 0.1}}})


@pytest.fixture(scope="module")
def plain_audit():
    return make_audit(60)


@pytest.fixture(scope="module")
def plain_html(plain_audit):
    return render_html(plain_audit)


@pytest.fixture(scope="module")
def json_audit():
    """The same kind of audit read back from its JSON (no data: fewer plots, cheaper to render)."""
    return make_audit(60, with_data=False)


def test_sections_summary_and_footer(plain_html, plain_audit):
    html = plain_html
    n = len(flagged_ids(plain_audit))
    assert f"<b>{n} of 60 pairs ({n / 60:.1%}) are flagged by at least one analyzer</b>" in html
    for title in ("Summary", "Annotator agreement", "Label noise", "Length and surface bias", "Hygiene",
                  "Pair browser", "Reproducibility", "Top suspected flips"):
        assert title in html
    # the skipped analyzer says why; no gate banner without thresholds
    assert "Skipped: no annotations given (--annotations)" in html
    assert 'id="verdict"' not in html
    # the key metrics with their CIs (Wilson interval of 12/60 for hygiene.exact_duplicate_share)
    assert "noise.estimated_rate" in html and "[0.08, 0.16]" in html
    # the footer: version, input hash, seed
    import prefaudit

    assert "ab" * 32 in html and prefaudit.__version__ in html
    assert re.search(r"<th>seed</th><td class=\"d\">0</td>", html)
    # plots are inline SVG (the noise score histogram and the registered cluster plot)
    assert html.count("<svg") >= 2
    assert "distribution of noise_score" in html


def test_gate_banner_and_table(json_audit):
    html = render_html(json_audit, gate={"metrics": {"noise.estimated_rate": {"max": 0.1},
                                                      "shortcut.auroc": {"max": 0.9}}})
    assert re.search(r'id="verdict">fail<', html)
    assert '<tr class="status-fail">' in html and '<tr class="status-pass">' in html
    ok = render_html(json_audit, gate={"metrics": {"noise.estimated_rate": {"max": 0.5}}})
    assert re.search(r'id="verdict">pass<', ok) and 'class="banner pass"' in ok


def test_self_contained_with_strict_csp(hostile_html):
    tags = parse(hostile_html)
    # nothing that loads from anywhere: no src/href to a URL, no <link>, no @import, no iframes
    for tag, attrs in tags.tags:
        assert tag not in ("link", "iframe", "object", "embed", "img", "base")
        for k in ("src", "href", "action", "xlink:href"):
            v = attrs.get(k) or ""
            assert not re.match(r"\s*(https?:|//|javascript:)", v, re.I), (tag, k, v)
    assert "@import" not in hostile_html and "url(http" not in hostile_html
    # exactly two script elements: the inert JSON block and our own script, which the CSP allows by hash
    scripts = tags.scripts
    assert [a.get("type") for a, _ in scripts] == ["application/json", None]
    csp = next(a["content"] for t, a in tags.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    digest = base64.b64encode(hashlib.sha256(scripts[1][1].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1]
    ids = [a["id"] for _, a in tags.tags if "id" in a]
    assert len(ids) == len(set(ids))  # several inline SVGs, no clashing ids


def test_every_payload_is_escaped(hostile_html):
    tags = parse(hostile_html)
    raw = ["<script>window", "<img src=x", "</textarea><b", "<b id=injected", "<a href=\"javascript",
           "<svg onload", "<!-- -->", "\u202e"]
    for r in raw:
        assert r not in hostile_html, r
    assert not any(t == "b" and a.get("id") == "injected" for t, a in tags.tags)
    assert not any(k.startswith("on") for _, a in tags.tags for k in a)
    # the payloads are there as text (escaped), bidi overrides shown as a visible mark
    assert "&lt;script&gt;window.__pwned=1;alert(1)&lt;/script&gt;" in hostile_html
    assert "abc⟨U+202E⟩evil.exe" in hostile_html
    # also inside the SVG plot (cluster names are tick labels)
    svgs = re.findall(r"<svg.*?</svg>", hostile_html, re.S)
    assert any("cluster &lt;script&gt;" in s for s in svgs)
    assert "plot unavailable" not in hostile_html  # hostile labels are drawn, not refused


def test_embedded_json_round_trips(hostile_html):
    audit = make_audit(60, hostile=True)
    html = hostile_html
    data_text = next(t for a, t in parse(html).scripts if a.get("id") == "pb-data")
    assert "<" not in data_text and ">" not in data_text and "&" not in data_text
    d = json.loads(data_text)
    ids = flagged_ids(audit)
    assert d["embedded"] == d["flagged"] == len(ids) and d["total"] == 60  # all (max_pairs 2000)
    assert [r[0] for r in d["rows"]] == [show_invisible(i) for i in ids]  # most suspicious first
    texts = audit.data.df.to_pandas().set_index("pair_id")
    for row in d["rows"]:
        src = texts.loc[next(i for i in ids if show_invisible(i) == row[0])]
        assert row[2] == show_invisible(src["chosen"])  # '</script>' survives the round trip as text
        assert row[3] == show_invisible(src["rejected"])
    # max_pairs: the N most suspicious
    few = browser_data(audit.pairs, audit.data.df, 5, None, True)
    assert [r[0] for r in json.loads(few.json)["rows"]] == [show_invisible(i) for i in ids[:5]]
    assert few.flagged == len(ids) and browser_data(audit.pairs, audit.data.df, 0, None, True).embedded == 0


def test_no_browser_without_pairs(json_audit):
    assert 'id="pb-data"' not in render_html(json_audit, max_pairs=0)


def test_long_texts_are_cut_for_embedding():
    audit = make_audit(12)
    df = audit.data.df.with_columns(
        pl.when(pl.col("pair_id") == "id-0000").then(pl.lit("x" * 5000 + "LAST TURN")).otherwise(pl.col("prompt"))
        .alias("prompt"),
        pl.when(pl.col("pair_id") == "id-0000").then(pl.lit("FIRST " + "y" * 5000)).otherwise(pl.col("chosen"))
        .alias("chosen"))
    audit.data.df = df
    d = json.loads(next(t for a, t in parse(render_html(audit)).scripts if a.get("id") == "pb-data"))
    row = next(r for r in d["rows"] if r[0] == "id-0000")
    assert len(row[1]) == EMBED_CHARS and row[1].endswith("LAST TURN")  # a prompt keeps its end
    assert len(row[2]) == EMBED_CHARS and row[2].startswith("FIRST ")
    assert row[8] == [0, 1]


def test_pairs_out_is_named_and_written(tmp_path, plain_audit):
    out = tmp_path / "pairs.parquet"
    p = report(plain_audit, tmp_path / "r.html", pairs_out=out)
    html = p.read_text(encoding="utf-8")
    assert str(out) in html
    assert pl.read_parquet(out).height == 60


def test_report_from_audit_json(tmp_path):
    live = make_audit(60, hostile=True)
    path = tmp_path / "audit.json"
    live.to_json(path)
    html = report(path, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "among the pairs stored in the audit JSON" not in html  # flagged examples are stored
    d = json.loads(next(t for a, t in parse(html).scripts if a.get("id") == "pb-data"))
    assert [r[0] for r in d["rows"]] == [show_invisible(i) for i in flagged_ids(live)]
    assert d["flagged"] is None  # unknown beyond the stored examples
    assert "Skipped: no annotations given" in html and "&lt;script&gt;" in html
    assert "\u202e" not in html
    # an audit JSON written by `gate --json` carries its verdict into the banner
    from prefaudit.gate import gate

    gate(live, {"metrics": {"noise.estimated_rate": {"max": 0.1}}})
    live.to_json(path)
    html = render_html(path)
    assert re.search(r'id="verdict">fail<', html)


def test_missing_and_odd_details_degrade_gracefully(plain_audit):
    from prefaudit.plots import register_plot

    @register_plot("report_test_broken")
    def _broken(result):
        raise RuntimeError("no data for this plot")

    audit = make_audit(20)
    audit.results["report_test_broken"] = AnalyzerResult(
        "report_test_broken", metrics={"broken.thing": Metric.undefined("nothing to measure")},
        details={"empty": pl.DataFrame(), "scalars": [1, 2, 3], "nested": {"a": {"b": [1, 2]}},
                 "records": [{"x": 1}, {"y": "two"}], "n": 3})
    audit.results["report_test_bare"] = AnalyzerResult("report_test_bare")
    html = render_html(audit)
    assert "plot unavailable: RuntimeError: no data for this plot" in html
    assert "nothing to measure" in html and "This analyzer reported no metrics." in html
    assert "records" in html


def test_ablation_slot(tmp_path, json_audit):
    abl = {"arms": {"raw": {"n_pairs": 900, "per_seed": [{"seed": 0, "preference_accuracy": 0.6}] * 3,
                            "mean": {"preference_accuracy": 0.6, "mean_margin": 0.2},
                            "ci": {"preference_accuracy": [0.55, 0.65], "mean_margin": [0.1, 0.3]}},
                    "cleaned <b>x</b>": {"n_pairs": 800, "per_seed": [{}, {}, {}],
                                         "mean": {"preference_accuracy": 0.66, "mean_margin": 0.3},
                                         "ci": {"preference_accuracy": [0.62, 0.70], "mean_margin": [0.2, 0.4]}}},
           "differences": [{"arm": "cleaned <b>x</b>", "baseline": "raw", "metric": "preference_accuracy",
                            "value": 0.06, "ci": [0.01, 0.11]},
                           {"arm": "cleaned <b>x</b>", "baseline": "raw", "metric": "mean_margin",
                            "value": 0.1, "ci": [-0.05, 0.25]}],
           "model": "tiny", "seeds": [0, 1, 2]}
    (tmp_path / "ablation.json").write_text(json.dumps(abl))
    html = render_html(json_audit, ablation=tmp_path)
    sec = html[html.index('id="ablation"'):html.index('id="repro"')]
    assert "0.6 [0.55, 0.65]" in sec and "0.66 [0.62, 0.7]" in sec
    assert "cleaned &lt;b&gt;x&lt;/b&gt;" in sec and "<b>x</b>" not in sec
    rows = re.findall(r"<tr>(.*?)</tr>", sec[sec.index("Differences"):], re.S)
    assert "yes" in rows[1] and rows[2].rstrip().endswith("<td>no</td>")  # CI excludes 0 or not
    assert "<svg" in sec
    assert 'id="ablation"' not in html[: html.index("<main>")] + html[html.index('id="repro"'):]
    with pytest.raises(InputError):
        load_ablation(tmp_path / "missing")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError):
        load_ablation(tmp_path / "bad.json")


def test_safe_json_is_inert_and_lossless():
    obj = {"t": PAYLOADS + ["\u2028\u2029", "&amp;"], "n": [1, 2.5, None]}
    s = safe_json(obj)
    assert not set("<>&\u2028\u2029") & set(s)
    assert json.loads(s) == obj


def test_deterministic_for_fixed_time(monkeypatch, json_audit):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = render_html(json_audit)
    assert "2023-11-14T22:13:20Z" in first and first == render_html(json_audit)


def test_registered_plot_runs_for_its_result(plain_html):
    html = plain_html
    sec = html[html.index(f'id="sec-{CLUSTER_TEST_PLOT}"'):]
    assert "<svg" in sec[: sec.index("</section>")]


def test_public_api_report_is_callable_after_the_module_is_imported(tmp_path, json_audit):
    import prefaudit
    import prefaudit.report as module  # binds prefaudit.report to the package module

    assert module.render_html is render_html
    path = prefaudit.report(json_audit, tmp_path / "api.html")
    assert path == tmp_path / "api.html" and path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
