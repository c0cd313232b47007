"""Hygiene: duplicates, contradictions, identical/empty/truncated responses, eval leakage.

Pure functions (usable alone) underneath; :class:`HygieneAnalyzer` on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from prefaudit.data.preference_set import PreferenceSet

#: Characters removed by :func:`normalize_expr`: Unicode punctuation and symbols.
_PUNCT = r"[\p{P}\p{S}]"


def normalize_expr(expr: pl.Expr | str) -> pl.Expr:
    """Normalised text: lower-cased, punctuation/symbols removed, whitespace collapsed and stripped.

    Vectorised (polars string kernels): two texts that differ only in case, punctuation or spacing
    normalise to the same string.
    """
    e = pl.col(expr) if isinstance(expr, str) else expr
    return (e.str.to_lowercase().str.replace_all(_PUNCT, " ")
            .str.replace_all(r"\s+", " ").str.strip_chars())


def _frame(df: pl.DataFrame | PreferenceSet) -> pl.DataFrame:
    return df.df if hasattr(df, "df") and not isinstance(df, pl.DataFrame) else df


def contradiction_groups(df: pl.DataFrame | PreferenceSet) -> pl.DataFrame:
    """Pairs labeled both ways: the same prompt and the same two responses, chosen/rejected swapped.

    Prompt and responses are compared after :func:`normalize_expr`. Pairs whose two responses
    normalise to the same text, and pairs marked ``tie`` (when that column exists), are never part
    of a contradiction. Returns one row per pair that belongs to a contradiction group — columns
    ``pair_id`` (Utf8) and ``contradiction_group`` (Int64, numbered 0.. in order of each group's
    first pair in ``df``) — and an empty frame when there is none. Every group holds at least one
    pair in each orientation; join on ``pair_id`` (left join: null = no contradiction).
    """
    df = _frame(df)
    schema = {"pair_id": pl.Utf8, "contradiction_group": pl.Int64}
    if df.height == 0:
        return pl.DataFrame(schema=schema)
    d = df.select(
        pl.col("pair_id").cast(pl.Utf8),
        normalize_expr("prompt").alias("_p"),
        normalize_expr("chosen").alias("_c"),
        normalize_expr("rejected").alias("_r"),
        (pl.col("tie") if "tie" in df.columns else pl.lit(False)).alias("_tie"),
    ).with_row_index("_row")
    d = d.filter((pl.col("_c") != pl.col("_r")) & ~pl.col("_tie").fill_null(False))
    d = d.with_columns(
        pl.min_horizontal("_c", "_r").alias("_lo"),
        pl.max_horizontal("_c", "_r").alias("_hi"),
        (pl.col("_c") < pl.col("_r")).alias("_dir"),
    )
    keys = ["_p", "_lo", "_hi"]
    groups = (d.group_by(keys).agg(pl.col("_dir").n_unique().alias("_nd"), pl.col("_row").min().alias("_first"))
              .filter(pl.col("_nd") > 1).sort("_first")
              .with_row_index("contradiction_group").select(*keys, pl.col("contradiction_group").cast(pl.Int64)))
    if groups.height == 0:
        return pl.DataFrame(schema=schema)
    return (d.join(groups, on=keys, how="inner").sort("_row")
            .select("pair_id", "contradiction_group"))
