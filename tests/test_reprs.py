"""Notebook reprs (escaped, truncated, composed from the parts) and results' to_polars/to_pandas/plot."""

from __future__ import annotations

import re

import matplotlib.figure
import pandas as pd
import polars as pl
import pytest
from report_fixtures import PAYLOADS, make_audit

from prefaudit.analyzers.base import AnalyzerResult, Metric
from prefaudit.plots import has_plot, plot_metrics, plot_scores
from prefaudit.report.svg import figure_to_svg
from prefaudit.reprs import audit_html, esc, result_html, show_invisible, table_html


@pytest.fixture(scope="module")
def real_audit():
    """A real audit of small synthetic data (generator defaults, 3 annotators) with every analyzer's input."""
    from prefaudit import synth
    from prefaudit.audit import audit

    d = synth.make(300, n_annotators=3, n_target=80, n_eval=50)
    return audit(d.pairs, target=d.target, eval=d.eval, tokenizer="tiny", max_length=64)


RAW = ("<script", "<img", "</textarea", "<b id", "<a href", "<svg", "\u202e")


def assert_escaped(html: str) -> None:
    for r in RAW:
        assert r not in html, r


def test_esc_escapes_truncates_and_shows_bidi():
    assert esc("<b>&'\"") == "&lt;b&gt;&amp;&#x27;&quot;"
    assert esc("x" * 100, limit=10) == "x" * 9 + "…"
    assert esc("ab\u202ecd") == "ab⟨U+202E⟩cd"
    assert show_invisible("\u2066a\u2069\u200f") == "⟨U+2066⟩a⟨U+2069⟩⟨U+200F⟩"
    assert esc(None) == ""


def test_table_and_result_reprs_escape_every_string():
    html = table_html(PAYLOADS, [PAYLOADS, PAYLOADS])
    assert_escaped(html)
    assert html.count("<tr>") == 3
    r = AnalyzerResult("noise", metrics={"noise.x": Metric(0.5, (0.4, 0.6), 10, method="wilson")},
                       pairs=pl.DataFrame({"pair_id": PAYLOADS, "noise_score": [0.1] * len(PAYLOADS),
                                           "noise_note": ["y" * 500] * len(PAYLOADS)}))
    html = r._repr_html_()
    assert_escaped(html)
    assert "y" * 79 + "…" in html and "y" * 81 not in html  # cells are truncated
    assert html.count("<tr>") == 2 + 1 + 5  # two header rows, one metric, the first 5 pairs only
    assert f"{len(PAYLOADS)} pairs" in html
    skipped = AnalyzerResult.skip("agreement", PAYLOADS[1])
    assert_escaped(result_html(skipped))
    assert "skipped" in result_html(skipped)


def test_audit_repr_is_compact_escaped_and_composed():
    audit = make_audit(60, hostile=True)
    for html in (audit_html(audit), audit._repr_html_()):
        assert_escaped(html)
        for name, r in audit.results.items():
            assert f"<summary>{esc(name)}" in html
            if not r.skipped:
                assert result_html(r) in html  # composed from the parts' reprs
        assert "noise.estimated_rate" in html
        assert len(html) < 40_000
    mine = audit_html(audit)
    assert re.search(r"<td>noise</td><td>ran</td><td>12</td>", mine)  # flagged pairs per analyzer
    assert "skipped — no annotations given" in mine


def test_preference_set_repr_is_escaped():
    audit = make_audit(12, hostile=True)
    html = audit.data._repr_html_()
    assert_escaped(html)
    assert "12 pairs" in html


def test_result_tables_and_plots():
    audit = make_audit(40)
    noise = audit.results["noise"]
    assert isinstance(noise.to_polars(), pl.DataFrame) and noise.to_polars().height == 40
    assert isinstance(noise.to_pandas(), pd.DataFrame)
    assert isinstance(noise.plot(), matplotlib.figure.Figure)  # unregistered -> metrics with CIs
    assert isinstance(plot_metrics(noise), matplotlib.figure.Figure)
    fig = plot_scores(audit.pairs, "noise")
    assert isinstance(fig, matplotlib.figure.Figure)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert sum(heights) == 40  # stacked bars: every pair once (flagged on top of the rest)


def test_svg_escapes_data_in_plots_and_never_crashes_on_math():
    from prefaudit.plots import new_figure

    fig = new_figure()
    ax = fig.add_subplot()
    ax.bar(range(3), [1, 2, 3])
    ax.set_xticks(range(3), ["</svg><script>alert(1)</script>", "$\\frac{$ unbalanced", "a\u202eb"])
    ax.set_title("<img src=x onerror=alert(1)>")
    svg = figure_to_svg(fig, salt="t")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<script" not in svg and "<img" not in svg and "\u202e" not in svg
    assert "&lt;/svg&gt;&lt;script&gt;" in svg and "a⟨U+202E⟩b" in svg
    assert "$\\frac{$ unbalanced" in svg  # shown as typed, not parsed as mathtext
    # matplotlib's own numeric labels keep their typesetting (no raw "$\\mathdefault{10^{3}}$")
    fig = new_figure()
    ax = fig.add_subplot()
    ax.plot([1, 10, 1000], [1, 100, 10_000])
    ax.set_yscale("log")
    ax.set_title("$x$ and $\\alpha$ from data")
    svg = figure_to_svg(fig, salt="log")
    assert "mathdefault" not in svg and "$x$ and $\\alpha$ from data" in svg


def test_svg_ids_unique_per_salt_and_big_collections_rasterised():
    import numpy as np

    from prefaudit.plots import new_figure

    def scatter(n):
        fig = new_figure()
        ax = fig.add_subplot()
        rng = np.random.default_rng(0)
        ax.scatter(rng.random(n), rng.random(n), s=2)
        return fig

    a, b = figure_to_svg(scatter(100), salt="a"), figure_to_svg(scatter(100), salt="b")
    ids_a, ids_b = set(re.findall(r'id="([^"]+)"', a)), set(re.findall(r'id="([^"]+)"', b))
    assert ids_a and not ids_a & ids_b
    refs = set(re.findall(r'(?:url\(#|href="#)([^")]+)', a))
    assert refs and refs <= ids_a  # every clip-path / marker reference still resolves
    big = figure_to_svg(scatter(50_000), salt="c")
    assert "<image" in big and "data:image/png;base64," in big
    assert len(big) < 400_000  # a 50,000-point scatter as vectors would be several MB


@pytest.mark.parametrize("name", ["hygiene", "agreement", "noise", "bias", "coverage", "truncation"])
def test_registered_analyzer_plots(name, real_audit):
    """Every analyzer result of a real audit whose analyzer registered a plot: plot() gives a Figure."""
    r = real_audit.results.get(name)
    if r is None or r.skipped:
        pytest.fail(f"{name} did not run on the synthetic audit: {None if r is None else r.skipped}")
    assert isinstance(r.to_polars(), pl.DataFrame) and isinstance(r.to_pandas(), pd.DataFrame)
    fig = r.plot()
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig.axes, "an empty figure"
    if has_plot(name):
        assert figure_to_svg(fig, salt=name).startswith("<svg")
    html = r._repr_html_()
    assert html.startswith("<div") and len(html) < 20_000


def test_confusion_heat_maps_show_each_annotators_matrix():
    import numpy as np

    from prefaudit.plots import plot_confusion

    labels = ("a", "b", "tie")
    rows = []
    mats = {"ann-1": np.eye(3), "ann-2 <b>": np.full((3, 3), 1 / 3)}
    for ann, m in mats.items():
        for i, t in enumerate(labels):
            for j, g in enumerate(labels):
                rows.append({"annotator_id": ann, "true_label": t, "given_label": g, "prob": float(m[i, j])})
    fig = plot_confusion(pl.DataFrame(rows))
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(images) == 2
    assert np.allclose(images[0], mats["ann-1"]) and np.allclose(images[1], mats["ann-2 <b>"])
    assert "ann-2 &lt;b&gt;" in figure_to_svg(fig, salt="cm")
