"""Multi-annotator data: votes -> Annotations, canonical a/b order, repeated ratings, consensus pairs.

Labels always refer to ``response_a``/``response_b`` (graded score in [-2, 2], positive = a better).

- **Long form** (one row per vote, with the pair's text): each pair is put in one canonical order —
  by model name when ``model_a``/``model_b`` are given (alphabetical: the smaller name is ``a``),
  otherwise the order of the pair's first row — and a vote whose row shows the responses the other
  way round has its score negated; ``shown_order`` records what the rater saw ("ab" or "ba").
  A row whose prompt/responses (or models) differ from its pair's first row -> ``inconsistent_pair``.
  Pair-level columns: the text, the models, and every other column that is constant within every
  pair (the rest stay with the votes).
- **Wide form**: one ``label_<annotator>`` column per annotator; an empty cell is "not rated".
- **Repeated ratings**: when one annotator rated the same pair more than once, the latest is kept
  (by ``timestamp`` when there is one, else the last row) and the earlier ones are quarantined as
  ``repeated_rating``.
- **Consensus**: :meth:`Annotations.consensus` (plurality, tie-broken by the mean score); chosen /
  rejected follow it, ``chosen_side`` says which of a/b was chosen, and a consensus tie keeps
  chosen = a, rejected = b with ``tie`` True. A pair with no usable vote -> ``no_annotations``.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from prefaudit.data.fields import ROW, qrow
from prefaudit.data.labels import LabelMap, label_of
from prefaudit.data.preference_set import Annotations
from prefaudit.data.shapes import WIDE_PREFIX

SOURCE_ROW = "source_row"


def _quarantine_rows(df: pl.DataFrame, mask: pl.Series | pl.Expr, where: str, reason: str,
                     detail: Any, column: str | None = None) -> list[dict]:
    """Quarantine entries for the rows of ``df`` under ``mask``; ``detail`` is text or a row -> text function."""
    out = []
    for rec in df.filter(mask).iter_rows(named=True):
        d = detail(rec) if callable(detail) else detail
        out.append(qrow(where, rec.get(ROW), reason, d, {k: v for k, v in rec.items() if not k.startswith("__")},
                        column))
    return out


def score_votes(df: pl.DataFrame, labels: LabelMap, where: str) -> tuple[pl.DataFrame, list[dict]]:
    """Add ``score`` and ``label`` (a/b/tie) from the raw ``label`` column; unknown labels -> bad_label."""
    score = labels.scores(df["label"])
    bad = score.is_null()
    quarantine = _quarantine_rows(df, bad, where, "bad_label", lambda r: f"label {r['label']!r} is not recognised",
                                  "label") if bad.any() else []
    df = df.with_columns(score.alias("score"))
    if bad.any():
        df = df.filter(~bad)
    df = df.with_columns(pl.col("label").alias("label_raw")).with_columns(label_of(pl.col("score")).alias("label"))
    return df, quarantine


def drop_repeats(df: pl.DataFrame, where: str) -> tuple[pl.DataFrame, list[dict], str | None]:
    """Keep the latest vote per (pair_id, annotator_id); quarantine earlier ones as repeated_rating."""
    order = ["timestamp", ROW] if "timestamp" in df.columns else [ROW]
    ranked = df.with_columns(
        pl.col(ROW).sort_by(order, descending=True, nulls_last=True).first()
        .over("pair_id", "annotator_id").alias("__keep_row"))
    dup = ranked[ROW] != ranked["__keep_row"]
    if not dup.any():
        return df, [], None
    n_pairs = ranked.filter(dup).select(pl.struct("pair_id", "annotator_id").n_unique()).item()
    keep_rows = dict(zip(ranked[ROW].to_list(), ranked["__keep_row"].to_list(), strict=True))
    quarantine = _quarantine_rows(
        ranked, dup, where, "repeated_rating",
        lambda r: f"annotator {r['annotator_id']!r} rated pair {r['pair_id']!r} again later "
                  f"(kept row {keep_rows[r[ROW]]})")
    note = (f"{n_pairs} (pair, annotator) combinations were rated more than once: kept the latest "
            f"{'by timestamp' if 'timestamp' in df.columns else 'row'}, quarantined {int(dup.sum())} earlier "
            "rating(s) as repeated_rating")
    return df.filter(~dup), quarantine, note


def canonical_order(df: pl.DataFrame, swap_pairs: list[tuple[str, str]] = ()) -> pl.DataFrame:
    """Put every row of a pair in one a/b order (models alphabetical, else the pair's first row)."""
    if {"model_a", "model_b"} <= set(df.columns):
        swap = (pl.col("model_a") > pl.col("model_b")).fill_null(False)
    else:
        first_a = pl.col("response_a").first().over("pair_id", order_by=ROW)
        swap = (pl.col("response_a") != first_a) & (pl.col("response_b") == first_a)
    df = df.with_columns(swap.alias("__swap"))
    cols = [("response_a", "response_b"), *(p for p in [("model_a", "model_b")] if p[0] in df.columns),
            *swap_pairs]
    exprs = []
    for a, b in cols:
        exprs += [pl.when("__swap").then(pl.col(b)).otherwise(pl.col(a)).alias(a),
                  pl.when("__swap").then(pl.col(a)).otherwise(pl.col(b)).alias(b)]
    exprs.append(pl.when("__swap").then(0.0 - pl.col("score")).otherwise(pl.col("score")).alias("score"))
    if "shown_order" not in df.columns:
        exprs.append(pl.when("__swap").then(pl.lit("ba")).otherwise(pl.lit("ab")).alias("shown_order"))
    else:
        exprs.append(pl.when("__swap").then(pl.col("shown_order").replace({"ab": "ba", "ba": "ab"}))
                     .otherwise(pl.col("shown_order")).alias("shown_order"))
    df = df.with_columns(exprs).with_columns(label_of(pl.col("score")).alias("label"))
    return df.drop("__swap")


def split_long(df: pl.DataFrame, labels: LabelMap, where: str, pair_cols: list[str] | None = None,
               swap_pairs: list[tuple[str, str]] = ()) -> tuple[pl.DataFrame, pl.DataFrame, list[dict], list[str]]:
    """Long-form rows -> (pairs in a/b form, votes, vote quarantine, notes)."""
    notes: list[str] = []
    df, quarantine = score_votes(df, labels, where)
    df = canonical_order(df, list(swap_pairs))
    key = ["prompt", "response_a", "response_b", *[c for c in ("model_a", "model_b") if c in df.columns]]
    first = pl.struct(key).first().over("pair_id", order_by=ROW)
    mismatch = pl.struct(key).ne_missing(first)
    bad = df.select(mismatch.alias("m"))["m"]
    if bad.any():
        quarantine += _quarantine_rows(df, bad, where, "inconsistent_pair",
                                       "prompt, responses or models differ from the pair's first row")
        df = df.filter(~bad)
    df, q, note = drop_repeats(df, where)
    quarantine += q
    if note:
        notes.append(note)
    vote_cols = {"annotator_id", "label", "score", "shown_order", "label_raw", "timestamp"}
    if pair_cols is None:
        others = [c for c in df.columns if c not in (*key, "pair_id", ROW, *vote_cols)]
        const = df.group_by("pair_id").agg([pl.col(c).n_unique().alias(c) for c in others]) if others else None
        pair_cols = [c for c in others if const is not None and const[c].max() == 1]
    pairs = (df.sort(ROW).group_by("pair_id", maintain_order=True)
             .agg([pl.col(c).first() for c in (*key, *pair_cols, ROW)]))
    votes = df.drop([*key, *pair_cols])
    return pairs, votes, quarantine, notes


def _as_label_text(col: str, dtype: pl.DataType) -> pl.Expr:
    """A wide label column as text; nested values (lists, objects) become an unrecognised marker."""
    if dtype == pl.Utf8:
        return pl.col(col)
    if dtype.is_nested() or dtype == pl.Object:
        return pl.when(pl.col(col).is_not_null()).then(pl.lit(f"<{dtype}>")).otherwise(None).alias(col)
    return pl.col(col).cast(pl.Utf8)


def wide_votes(df: pl.DataFrame, labels: LabelMap, where: str) -> tuple[pl.DataFrame, pl.DataFrame, list[dict], int]:
    """(pairs without the label columns, votes, vote quarantine, number of rated cells)."""
    label_cols = [c for c in df.columns if c.startswith(WIDE_PREFIX)]
    long = (df.select("pair_id", ROW, *[_as_label_text(c, df.schema[c]) for c in label_cols])
            .unpivot(index=["pair_id", ROW], on=label_cols, variable_name="annotator_id", value_name="label")
            .drop_nulls("label")
            .with_columns(pl.col("annotator_id").str.slice(len(WIDE_PREFIX))))
    cells = long.height
    votes, quarantine = score_votes(long, labels, where)
    return df.drop(label_cols), votes, quarantine, cells


def attach(pairs: pl.DataFrame, votes: pl.DataFrame, where: str) -> tuple[pl.DataFrame, list[dict]]:
    """Consensus chosen/rejected for pairs in a/b form; pairs without votes -> no_annotations."""
    ann = Annotations(votes.select("pair_id", "annotator_id", "label", "score"))
    cons = ann.consensus().select("pair_id", "consensus")
    joined = pairs.join(cons, on="pair_id", how="left", maintain_order="left")
    none = joined["consensus"].is_null()
    quarantine = _quarantine_rows(joined, none, where, "no_annotations", "no usable vote for this pair") \
        if none.any() else []
    joined = joined.filter(~none) if none.any() else joined
    b = pl.col("consensus") == "b"
    out = joined.with_columns(
        pl.when(b).then(pl.col("response_b")).otherwise(pl.col("response_a")).alias("chosen"),
        pl.when(b).then(pl.col("response_a")).otherwise(pl.col("response_b")).alias("rejected"),
        (pl.col("consensus") == "tie").alias("tie"),
        pl.when(b).then(pl.lit("b")).otherwise(pl.lit("a")).alias("chosen_side"),
    ).drop("consensus", "response_a", "response_b")
    return out, quarantine


def votes_to_annotations(votes: pl.DataFrame, quarantine: pl.DataFrame, source: Any) -> Annotations:
    """Annotations with the vote columns first; the source row kept as ``source_row``."""
    df = votes.rename({ROW: SOURCE_ROW}) if ROW in votes.columns else votes
    df = df.drop([c for c in df.columns if c.startswith("__")])
    first = [c for c in ("pair_id", "annotator_id", "label", "score", "shown_order") if c in df.columns]
    df = df.select(first + [c for c in df.columns if c not in first])
    return Annotations(df, quarantine, source)
