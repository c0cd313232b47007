"""The report's view model: an :class:`~prefaudit.audit.Audit` turned into plain display objects.

Nothing here writes HTML. Every dataset string ends up in a :class:`Table`, an :class:`Example` or the
pair browser's JSON as plain text; the jinja template (autoescape on) and the browser script
(``textContent`` only) do the escaping. A live audit (``audit.data`` set) gives the full per-pair table;
an audit read back from JSON gives its ``examples`` (the most suspicious pairs with their texts) and
details, and the sections degrade to what is there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from prefaudit.report.tables import Table, cell, clip, detail_tables, frame_table
from prefaudit.reprs import KEY_METRICS, format_metric, show_invisible

if TYPE_CHECKING:
    from prefaudit.analyzers.base import AnalyzerResult, Metric
    from prefaudit.audit import Audit

EXAMPLE_CHARS = 600
SECTION_EXAMPLES = 6
CORE = ("pair_id", "prompt", "chosen", "rejected")

#: Section order, titles and a one-line reading guide per known analyzer (others follow, generic).
ANALYZERS: dict[str, tuple[str, str]] = {
    "agreement": ("Annotator agreement",
                  "How consistently annotators label the same pair: chance-corrected agreement over a/b/tie "
                  "votes, each annotator against the consensus, the label confusion and position bias "
                  "(preferring whichever response was shown first)."),
    "noise": ("Label noise",
              "Pairs whose recorded preference is probably wrong. Score 1 = the label looks right; low = a "
              "suspected flip. The estimated rate is the share of wrong labels in the whole set."),
    "coverage": ("Prompt coverage",
                 "Clusters of the training prompts, and the target prompts (what the model will face) that "
                 "land in clusters the training data barely covers or far from every training prompt."),
    "bias": ("Length and surface bias",
             "Whether the chosen response wins for surface reasons: how often it is the longer one, the win "
             "rate by length difference, and how well surface features alone predict the chosen side."),
    "truncation": ("Truncation",
                   "Pairs whose prompt and response exceed the training length, so that the part that decides "
                   "the preference may be cut away."),
    "hygiene": ("Hygiene",
                "Exact and near duplicates, contradictions (the same pair labelled both ways), identical or "
                "empty responses, and prompts leaked from the evaluation set."),
}
EXAMPLE_TITLES = {"noise": "Top suspected flips", "hygiene": "Examples"}
#: Detail tables shown first, per analyzer (the rest follow in the analyzer's order).
DETAILS_FIRST = {"coverage": ("gaps", "clusters"), "hygiene": ("summary",),
                 "bias": ("length_bins", "effects")}
#: Detail tables that are plot data or long listings: folded away (still in the page).
DETAILS_FOLDED = {"coverage": ("map", "points", "silhouette", "target")}


def anchor(name: str) -> str:
    """An HTML id for a section (analyzer names are code-defined; still kept to a safe alphabet)."""
    return "sec-" + "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in name)


@dataclass
class MetricView:
    name: str
    value: str
    ci: str
    n: str
    note: str | None
    method: str | None
    defined: bool


def metric_view(name: str, m: Metric) -> MetricView:
    value, ci, _ = format_metric(m)
    return MetricView(name, value, ci, str(m.n), m.note, m.method, m.value is not None)


@dataclass
class Example:
    """One pair shown side by side: texts cut for display, score, flags and reasons."""

    pair_id: str
    prompt: str
    chosen: str
    rejected: str
    score: str
    flags: list[str]
    reasons: list[str]
    extra: list[str] = field(default_factory=list)


@dataclass
class Plot:
    caption: str
    svg: str | None = None
    error: str | None = None


@dataclass
class Section:
    name: str
    anchor: str
    title: str
    intro: str
    skipped: str | None = None
    metrics: list[MetricView] = field(default_factory=list)
    flagged: str | None = None
    plots: list[Plot] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    reason_counts: Table | None = None
    examples: list[Example] = field(default_factory=list)
    examples_title: str = "Most suspicious pairs"
    config: str = ""


# ---- the per-pair table -------------------------------------------------------------------------------
def analyzer_columns(pairs: pl.DataFrame) -> list[str]:
    """Analyzer names with a boolean ``<name>_flag`` column, in table order."""
    return [c.removesuffix("_flag") for c in pairs.columns
            if c.endswith("_flag") and pairs.schema[c] == pl.Boolean]


def reason_columns(pairs: pl.DataFrame) -> list[str]:
    return [c for c in pairs.columns if c.endswith(("_reasons", "_reason"))
            and (pairs.schema[c] == pl.Utf8 or isinstance(pairs.schema[c], pl.List))]


def reasons_expr(pairs: pl.DataFrame, column: str) -> pl.Expr:
    """A ``List(Utf8)`` of reason codes from a list column or a ``,``/``;``/``|``-separated text column."""
    if isinstance(pairs.schema[column], pl.List):
        return pl.col(column).cast(pl.List(pl.Utf8)).list.drop_nulls()
    return (pl.col(column).fill_null("").str.replace_all(r"\s*[,;|]\s*", ",").str.strip_chars(", ")
            .str.split(",").list.eval(pl.element().filter(pl.element() != "")))


def with_reasons(pairs: pl.DataFrame) -> pl.DataFrame:
    """``pairs`` plus ``_reasons``: every reason code of the row (all reason columns together)."""
    cols = reason_columns(pairs)
    if not cols:
        return pairs.with_columns(pl.lit([], pl.List(pl.Utf8)).alias("_reasons"))
    return pairs.with_columns(pl.concat_list([reasons_expr(pairs, c) for c in cols]).alias("_reasons"))


def live(audit: Audit) -> bool:
    """True when the audit holds its data (not read back from JSON)."""
    return getattr(audit, "data", None) is not None


def pair_table(audit: Audit) -> pl.DataFrame:
    """The per-pair table to read flags, scores and reasons from (the examples for a JSON audit)."""
    if not live(audit) and getattr(audit, "examples", None) is not None and audit.examples.width:
        return audit.examples
    return audit.pairs


def text_table(audit: Audit) -> pl.DataFrame | None:
    """pair_id + prompt/chosen/rejected (+ metadata) for the pairs whose texts we have."""
    if live(audit):
        return audit.data.df
    ex = getattr(audit, "examples", None)
    if ex is not None and all(c in ex.columns for c in CORE):
        return ex
    return None


def ranked(pairs: pl.DataFrame, n: int | None) -> pl.DataFrame:
    """The flagged pairs, most suspicious first (:func:`prefaudit.audit.rank_suspicious`)."""
    from prefaudit.audit import rank_suspicious

    if "n_flags" in pairs.columns and "flags" in pairs.columns:  # already ranked (JSON examples)
        base = pairs.filter(pl.col("n_flags") > 0)
        base = base.sort(["n_flags", "min_score", "pair_id"], descending=[True, False, False], nulls_last=True)
        return base if n is None else base.head(n)
    return rank_suspicious(pairs, n)


def with_texts(frame: pl.DataFrame, texts: pl.DataFrame | None) -> pl.DataFrame:
    """Join the texts (and metadata) onto ``frame`` by pair_id when ``frame`` lacks them."""
    if texts is None or all(c in frame.columns for c in CORE):
        return frame
    keep = [c for c in texts.columns if c not in frame.columns or c == "pair_id"]
    return frame.join(texts.select(keep), on="pair_id", how="left", maintain_order="left")


def example_list(frame: pl.DataFrame, score_col: str | None) -> list[Example]:
    out = []
    for r in frame.iter_rows(named=True):
        score = r.get(score_col) if score_col else r.get("min_score")
        flags = r.get("flags") or []
        out.append(Example(
            pair_id=cell(r.get("pair_id"), 200), prompt=clip(r.get("prompt"), EXAMPLE_CHARS, tail=True),
            chosen=clip(r.get("chosen"), EXAMPLE_CHARS), rejected=clip(r.get("rejected"), EXAMPLE_CHARS),
            score=cell(score), flags=[cell(f) for f in flags], reasons=[cell(x) for x in r.get("_reasons") or []]))
    return out


# ---- sections ------------------------------------------------------------------------------------------
def _flag_line(pairs: pl.DataFrame, name: str, is_live: bool) -> str | None:
    col = f"{name}_flag"
    if col not in pairs.columns or pairs.schema[col] != pl.Boolean:
        return None
    k = int(pairs[col].fill_null(False).sum())
    if not is_live:
        return f"{k:,} of the {pairs.height:,} pairs stored in the audit JSON are flagged"
    n = int(pairs[col].is_not_null().sum())
    share = f" ({k / n:.1%})" if n else ""
    return f"{k:,} of {n:,} pairs flagged{share}"


def _reason_counts(pairs: pl.DataFrame, name: str) -> Table | None:
    cols = [c for c in reason_columns(pairs) if c.startswith(f"{name}_")]
    if not cols:
        return None
    exploded = pairs.select(pl.concat_list([reasons_expr(pairs, c) for c in cols]).alias("reason")).explode("reason")
    counts = exploded.drop_nulls().group_by("reason").len("pairs").sort(["pairs", "reason"], descending=[True, False])
    if counts.height == 0:
        return None
    return frame_table("pairs per reason", counts, max_rows=30)


def section_examples(pairs: pl.DataFrame, texts: pl.DataFrame | None, name: str,
                     k: int = SECTION_EXAMPLES) -> list[Example]:
    """The ``k`` pairs this analyzer flags with the lowest scores, with their texts."""
    flag, score = f"{name}_flag", f"{name}_score"
    if flag not in pairs.columns or texts is None:
        return []
    top = pairs.filter(pl.col(flag).fill_null(False))
    if score in pairs.columns and pairs.schema[score].is_numeric():
        top = top.top_k(k, by=[score, "pair_id"], reverse=[True, True]).sort([score, "pair_id"], nulls_last=True)
    else:
        top = top.sort("pair_id").head(k)
    if top.height == 0:
        return []
    top = with_reasons(with_texts(top, texts))
    if "flags" not in top.columns:
        names = analyzer_columns(pairs)
        top = top.with_columns(pl.concat_list([pl.when(pl.col(f"{a}_flag").fill_null(False)).then(pl.lit(a))
                                               .otherwise(None) for a in names]).list.drop_nulls().alias("flags"))
    return example_list(top, score if score in top.columns else None)


EXAMPLE_CARDS = 12
REASON_KEYS = ("reason", "reasons", "kind")


def example_details(details: Mapping[str, Any]) -> dict[str, pl.DataFrame]:
    """Detail tables that are example pairs (they have prompt, chosen and rejected columns)."""
    from prefaudit.report.tables import records_frame

    out = {}
    for key, value in details.items():
        frame = value if isinstance(value, pl.DataFrame) else (
            records_frame(value) if isinstance(value, (list, tuple)) else None)
        if frame is not None and all(c in frame.columns for c in ("prompt", "chosen", "rejected")):
            out[str(key)] = frame
    return out


def examples_from_frame(frame: pl.DataFrame, name: str, k: int = EXAMPLE_CARDS) -> list[Example]:
    """An analyzer's own example table as side-by-side cards (its other columns in the header)."""
    score_col = next((c for c in (f"{name}_score", "score") if c in frame.columns), None)
    shown = {"pair_id", "prompt", "chosen", "rejected", score_col, *REASON_KEYS}
    out = []
    for r in frame.head(k).iter_rows(named=True):
        reasons: list[str] = []
        for key in REASON_KEYS:
            v = r.get(key)
            reasons += [cell(x) for x in (v if isinstance(v, list) else [v]) if x not in (None, "")]
        out.append(Example(
            pair_id=cell(r.get("pair_id"), 200), prompt=clip(r.get("prompt"), EXAMPLE_CHARS, tail=True),
            chosen=clip(r.get("chosen"), EXAMPLE_CHARS), rejected=clip(r.get("rejected"), EXAMPLE_CHARS),
            score=cell(r.get(score_col)) if score_col else "—", flags=[], reasons=reasons,
            extra=[f"{cell(c, 40)}: {cell(v, 80)}" for c, v in r.items() if c not in shown and v is not None][:6]))
    return out


def build_section(name: str, result: AnalyzerResult, pairs: pl.DataFrame, texts: pl.DataFrame | None,
                  is_live: bool, plots: list[Plot]) -> Section:
    title, intro = ANALYZERS.get(name, (name.replace("_", " ").capitalize(), ""))
    sec = Section(name=name, anchor=anchor(name), title=show_invisible(title), intro=intro,
                  examples_title=EXAMPLE_TITLES.get(name, "Most suspicious pairs"))
    if result.config:
        sec.config = cell(result.config, 600)
    if result.skipped:
        sec.skipped = show_invisible(str(result.skipped))
        return sec
    sec.metrics = [metric_view(k, m) for k, m in result.metrics.items()]
    sec.flagged = _flag_line(pairs, name, is_live)
    sec.plots = plots
    own = example_details(result.details)
    sec.tables = detail_tables({k: v for k, v in result.details.items() if k not in own},
                               first=DETAILS_FIRST.get(name, ()), folded=DETAILS_FOLDED.get(name, ()))
    sec.reason_counts = _reason_counts(pairs, name)
    if own:  # the analyzer chose its examples (e.g. a few per reason): show those
        sec.examples = [e for frame in own.values() for e in examples_from_frame(frame, name)]
        sec.examples_title = "Examples" if len(own) > 1 else str(next(iter(own))).replace("_", " ").capitalize()
    else:
        sec.examples = section_examples(pairs, texts, name)
    return sec


# ---- summary, gate, footer -----------------------------------------------------------------------------
def summary_metrics(metrics: Mapping[str, Metric]) -> list[MetricView]:
    """The key metrics (DESIGN.md names) in display order, defined or not."""
    return [metric_view(k, metrics[k]) for k in KEY_METRICS if k in metrics]


@dataclass
class GateView:
    verdict: str
    counts: dict[str, int]
    source: str | None
    columns: list[str]
    rows: list[tuple[str, list[str]]]  # (status, cells)


GATE_COLUMNS = ("metric", "kind", "severity", "on", "min", "max", "max_worsening", "value", "baseline",
                "status", "message")


def gate_view(verdict: str, checks: Any, counts: Mapping[str, int] | None = None,
              source: str | None = None) -> GateView:
    """The verdict banner and check table from a checks frame or a list of check dicts."""
    records = checks.to_dicts() if isinstance(checks, pl.DataFrame) else [dict(c) for c in checks or []]
    cols = [c for c in GATE_COLUMNS if any(r.get(c) is not None for r in records)] or ["metric", "status"]
    rows = [(str(r.get("status") or ""), [cell(r.get(c), 300) for c in cols]) for r in records]
    if counts is None:
        statuses = [s for s, _ in rows]
        counts = {s: statuses.count(s) for s in ("pass", "warn", "fail", "skip")}
    return GateView(str(verdict), dict(counts), None if source is None else cell(source, 300), cols, rows)


def footer_items(audit: Audit, generated: str) -> list[tuple[str, str]]:
    import prefaudit

    inp = dict(getattr(audit, "input", {}) or {})
    items = [("prefaudit version", getattr(audit, "prefaudit_version", None) or prefaudit.__version__),
             ("report prefaudit version", prefaudit.__version__),
             ("input", inp.get("path") or "memory"),
             ("input sha256", inp.get("sha256") or "—"),
             ("rows read / pairs / quarantined",
              f"{inp.get('rows_read', '—')} / {inp.get('pairs', '—')} / {inp.get('quarantined', '—')}"),
             ("seed", getattr(audit, "seed", None)),
             ("generated", generated)]
    if items[0][1] == items[1][1]:
        del items[1]
    return [(k, cell(v, 400)) for k, v in items]


def config_text(audit: Audit) -> str:
    """The audit's configuration as indented JSON (dataset-derived strings shown, never interpreted)."""
    return show_invisible(json.dumps(getattr(audit, "config", {}) or {}, indent=2, ensure_ascii=False,
                                     default=str, sort_keys=True))
