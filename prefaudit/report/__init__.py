"""The self-contained HTML audit report.

:func:`render_html` turns an :class:`~prefaudit.audit.Audit` (live, or read back from its JSON) into one
HTML file that opens offline: inline CSS, inline SVG plots (matplotlib), the pair browser's data as an
inert JSON block and a small inline script of our own, under a strict Content-Security-Policy
(``default-src 'none'``; the one script allowed by its sha256). :func:`report` also runs the audit
when given data, and writes the file.

Dataset text is untrusted: the template autoescapes everything, plots keep text as XML-escaped text,
the embedded JSON escapes ``<``, ``>`` and ``&``, and the script writes data only via ``textContent``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from prefaudit._callable import callable_module
from prefaudit.audit import read_audit_json
from prefaudit.report.ablation import ablation_view, load_ablation
from prefaudit.report.browser import EMBED_CHARS, browser_data
from prefaudit.report.model import (
    ANALYZERS,
    Plot,
    Section,
    build_section,
    config_text,
    footer_items,
    gate_view,
    live,
    pair_table,
    summary_metrics,
    text_table,
)
from prefaudit.report.svg import figure_to_svg
from prefaudit.report.tables import Table, cell, frame_table

if TYPE_CHECKING:
    from prefaudit.analyzers.base import AnalyzerResult
    from prefaudit.audit import Audit

DEFAULT_MAX_PAIRS = 2000
#: Keyword arguments of :func:`render_html` (the rest of :func:`report`'s go to :func:`prefaudit.audit`).
RENDER_KEYS = ("gate", "ablation", "max_pairs", "pairs_out", "title")


@cache
def _assets() -> tuple[str, str]:
    base = resources.files("prefaudit.report")
    css = (base / "style.css").read_text(encoding="utf-8")
    script = (base / "browser.js").read_text(encoding="utf-8")
    if "</" in script or "<!--" in script:
        raise RuntimeError("browser.js must not contain '</' or '<!--' (it is inlined in a <script>)")
    return css, script


@cache
def _template():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("prefaudit.report") / "templates")),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2")


def content_security_policy(script: str) -> str:
    """No network, no plugins, no frames; only our inline script (by hash), inline styles, data: images."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'")


def _as_audit(audit: Any) -> tuple[Audit, dict[str, Any] | None]:
    """The Audit, and the checks/verdict an audit JSON carries (written by ``gate --json``)."""
    from prefaudit.audit import Audit

    if isinstance(audit, Audit):
        return audit, None
    if isinstance(audit, (str, Path)) and str(audit).endswith(".json"):
        audit = read_audit_json(audit)
    if isinstance(audit, Mapping):
        stored = ({"verdict": audit["verdict"], "checks": audit["checks"]}
                  if audit.get("verdict") is not None and audit.get("checks") is not None else None)
        return Audit.from_dict(audit), stored
    raise TypeError(f"render_html needs an Audit (or its JSON dict or file), got {type(audit).__name__}")


def _svg_of(make: Any, salt: str, caption: str) -> Plot:
    """Build a figure with ``make()`` and inline it; a failing plot shows its error instead."""
    try:
        fig = make()
        return Plot(caption, svg=_markup(figure_to_svg(fig, salt=salt)))
    except Exception as e:  # a plot must never take the whole report down
        return Plot(caption, error=f"{type(e).__name__}: {e}")


def analyzer_plots(name: str, result: AnalyzerResult, pairs: pl.DataFrame, is_live: bool) -> list[Plot]:
    """The analyzer's registered plot, and (for a live audit) the histogram of its per-pair scores."""
    from prefaudit.plots import has_plot, plot_confusion, plot_scores

    plots: list[Plot] = []
    if has_plot(name):
        plots.append(_svg_of(result.plot, f"{name}-main", ANALYZERS.get(name, (name,))[0]))
    confusion = result.details.get("confusion")
    if isinstance(confusion, pl.DataFrame) and {"annotator_id", "true_label", "given_label", "prob"} <= set(
            confusion.columns) and confusion.height:
        plots.append(_svg_of(lambda: plot_confusion(confusion), f"{name}-confusion",
                             "label confusion per annotator (Dawid–Skene: true label × given label)"))
    score = f"{name}_score"
    if is_live and score in pairs.columns and pairs.schema[score].is_numeric() \
            and pairs[score].drop_nulls().n_unique() > 2:
        plots.append(_svg_of(lambda: plot_scores(pairs, name), f"{name}-scores",
                             f"distribution of {score} over all pairs"))
    return plots


def _ordered(results: Mapping[str, AnalyzerResult]) -> list[str]:
    known = [n for n in ANALYZERS if n in results]
    return known + [n for n in results if n not in ANALYZERS]


def _gate(audit: Audit, gate: Any):
    """A :class:`GateView` from a GateResult, thresholds (path / mapping), or what the audit carries."""
    if gate is None:
        gate = getattr(audit, "gate_result", None)
        if gate is None:
            return None
    if hasattr(gate, "verdict") and hasattr(gate, "checks"):
        return gate_view(gate.verdict, gate.checks, getattr(gate, "counts", None), getattr(gate, "source", None))
    if isinstance(gate, Mapping) and "verdict" in gate and "checks" in gate:
        return gate_view(gate["verdict"], gate["checks"], gate.get("counts"), gate.get("thresholds"))
    from prefaudit.gate import gate as run_gate

    res = run_gate(audit, gate, attach=False)
    return gate_view(res.verdict, res.checks, res.counts, res.source)


def _flag_table(pairs: pl.DataFrame, results: Mapping[str, AnalyzerResult], is_live: bool) -> Table | None:
    if not is_live:
        return None
    rows = []
    for name in _ordered(results):
        r = results[name]
        col = f"{name}_flag"
        if r.skipped:
            rows.append([cell(name), "skipped", "", "", cell(r.skipped, 200)])
        elif col in pairs.columns and pairs.schema[col] == pl.Boolean:
            k, n = int(pairs[col].fill_null(False).sum()), int(pairs[col].is_not_null().sum())
            rows.append([cell(name), "ran", f"{k:,}", f"{k / n:.2%}" if n else "—", ""])
        else:
            rows.append([cell(name), "ran", "—", "—", "no per-pair flags"])
    return Table("flags", ["analyzer", "status", "flagged pairs", "share", "note"], rows, len(rows),
                 [False, False, True, True, False]) if rows else None


def _generated() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = (dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch and epoch.isdigit()
           else dt.datetime.now(dt.timezone.utc))
    return now.isoformat(timespec="seconds").replace("+00:00", "Z")


def render_html(audit: Audit | Mapping[str, Any], path: str | Path | None = None, *, gate: Any = None,
                ablation: str | Path | Mapping[str, Any] | None = None, max_pairs: int = DEFAULT_MAX_PAIRS,
                pairs_out: str | Path | None = None, title: str | None = None) -> str:
    """The report as one self-contained HTML string (also written to ``path`` when given).

    ``gate``: a GateResult, or thresholds (a TOML path or mapping) to judge the audit with; by default
    the audit's own gate result when :func:`prefaudit.gate` attached one (no banner otherwise).
    ``ablation``: an ``ablation.json`` dict, file or directory. ``max_pairs``: how many of the most
    suspicious flagged pairs the pair browser embeds. ``pairs_out``: where the full per-pair table was
    written (named in the page; :func:`report` writes it).
    """
    audit, stored_gate = _as_audit(audit)
    if gate is None:
        gate = stored_gate
    css, script = _assets()
    is_live = live(audit)
    pairs, texts = pair_table(audit), text_table(audit)
    results = audit.results
    sections: list[Section] = [
        build_section(n, results[n], pairs, texts, is_live,
                      [] if results[n].skipped else analyzer_plots(n, results[n], pairs, is_live))
        for n in _ordered(results)]
    browser = browser_data(pairs, texts, max_pairs, None if pairs_out is None else str(pairs_out), is_live)
    abl = abl_plot = None
    if ablation is not None:
        abl = ablation_view(load_ablation(ablation))
        if abl.figure is not None:
            abl_plot = _svg_of(lambda: abl.figure, "ablation", "each arm's mean with its 95% CI, per metric")
    inp = dict(getattr(audit, "input", {}) or {})
    src = inp.get("path")
    n_pairs = audit.metrics["data.pairs"].value if "data.pairs" in audit.metrics else inp.get("pairs")
    breakdowns = [frame_table(k, v) for k, v in (getattr(audit, "breakdowns", {}) or {}).items()
                  if isinstance(v, pl.DataFrame) and v.height]
    html = _template().render(
        title=cell(title or f"prefaudit audit — {Path(str(src)).name if src else 'in-memory data'}", 300),
        version=cell(__import__("prefaudit").__version__), csp=content_security_policy(script), css=_markup(css),
        script=_markup(script), input_path=cell(src or "memory", 300), n_pairs=cell(n_pairs),
        generated=_generated(), gate=_gate(audit, gate), summary=summary_metrics(audit.metrics),
        flag_table=_flag_table(pairs, results, is_live), sections=sections, breakdowns=breakdowns,
        browser=browser, browser_json=_markup(browser.json), embed_chars=EMBED_CHARS, live=is_live,
        pairs_out=None if pairs_out is None else cell(pairs_out, 300), ablation=abl, ablation_plot=abl_plot,
        footer=footer_items(audit, _generated()), config=config_text(audit))
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(html.encode("utf-8", errors="replace"))
    return html


def _markup(s: str):
    """Trusted markup: our own CSS/JS, matplotlib's escaped SVG, and JSON made inert by ``safe_json``."""
    from markupsafe import Markup

    return Markup(s)


def report(audit_or_data: Any, path: str | Path, **kw: Any) -> Path:
    """Write the HTML report to ``path`` and return it.

    ``audit_or_data``: an Audit, an audit JSON dict or ``.json`` file written by ``prefaudit audit``, or
    data (a PreferenceSet or anything :func:`prefaudit.load` reads) to audit first. Keyword arguments
    named in :data:`RENDER_KEYS` go to :func:`render_html`; the rest (``annotations``, ``target``,
    ``seed``, ``embeddings``...) go to :func:`prefaudit.audit.audit`. With ``pairs_out`` the full per-pair
    table is written there (Parquet or CSV) when the audit holds it.
    """
    from prefaudit.audit import Audit
    from prefaudit.audit import audit as run_audit

    render_kw = {k: kw.pop(k) for k in RENDER_KEYS if k in kw}
    if isinstance(audit_or_data, (Audit, Mapping)) or _is_audit_json(audit_or_data):
        if kw:
            raise TypeError(f"audit options {sorted(kw)} need data, not an existing audit")
        audit = audit_or_data if isinstance(audit_or_data, (Audit, Mapping)) else read_audit_json(audit_or_data)
    else:
        audit = run_audit(audit_or_data, **kw)
    pairs_out = render_kw.get("pairs_out")
    if pairs_out is not None:
        if not isinstance(audit, Mapping) and live(audit):
            audit.write_pairs(pairs_out)
        elif not Path(pairs_out).exists():
            render_kw["pairs_out"] = None  # an audit read from JSON has no full per-pair table to write
    p = Path(path)
    render_html(audit, p, **render_kw)
    return p


def _is_audit_json(x: Any) -> bool:
    if not isinstance(x, (str, Path)) or not str(x).endswith(".json") or not Path(x).is_file():
        return False
    with open(x, encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    return '"schema_version"' in head and '"prefaudit_version"' in head


callable_module(__name__, report)

__all__ = ["DEFAULT_MAX_PAIRS", "content_security_policy", "figure_to_svg", "read_audit_json", "render_html",
           "report"]
