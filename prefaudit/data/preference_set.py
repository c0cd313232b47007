"""PreferenceSet (one row per pair) and Annotations (one row per vote), both polars-backed.

Core columns of a PreferenceSet: ``pair_id``, ``prompt``, ``chosen``, ``rejected`` (all text) and ``tie``
(bool; True when the annotators' consensus is a tie — chosen/rejected are then response_a/response_b).
With annotations there is also ``chosen_side`` ("a" or "b": which of response_a/response_b is chosen).
Every other column is metadata and is preserved.

Annotation labels always refer to response_a / response_b: ``label`` is "a", "b" or "tie" and
``score`` is a graded value in [-2, 2] (positive: a is better; ±1 for a plain a/b vote, 0 for a tie).
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from prefaudit.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

CORE_COLUMNS = ("pair_id", "prompt", "chosen", "rejected")
LABELS = ("a", "b", "tie")
ANNOTATION_COLUMNS = ("pair_id", "annotator_id", "label", "score")
QUARANTINE_SCHEMA = {"source": pl.Utf8, "row": pl.Int64, "reason": pl.Utf8, "detail": pl.Utf8, "record": pl.Utf8}
RECORD_PREVIEW = 1000


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def quarantine_frame(rows: Iterable[dict[str, Any]]) -> pl.DataFrame:
    """Build a quarantine table (source, row, reason, detail, record preview) from dict rows."""
    rows = [
        {
            "source": None if r.get("source") is None else str(r.get("source")),
            "row": r.get("row"),
            "reason": r["reason"],
            "detail": r.get("detail"),
            "record": None if r.get("record") is None else str(r["record"])[:RECORD_PREVIEW],
        }
        for r in rows
    ]
    return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA) if rows else empty_quarantine()


def content_pair_ids(prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str]) -> list[str]:
    """Stable ids from content: sha1(prompt, chosen, rejected)[:16]; repeats get ``-2``, ``-3``..."""
    seen: dict[str, int] = {}
    out = []
    for p, c, r in zip(prompts, chosen, rejected, strict=True):
        h = hashlib.sha1("\x1f".join((p, c, r)).encode("utf-8", "surrogatepass")).hexdigest()[:16]
        k = seen.get(h, 0) + 1
        seen[h] = k
        out.append(h if k == 1 else f"{h}-{k}")
    return out


@dataclass(frozen=True)
class SourceInfo:
    """Where a set came from: path (or a description of the in-memory object), sha256, rows read."""

    path: str | None = None
    sha256: str | None = None
    rows_read: int = 0
    format: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "rows_read": self.rows_read, "format": self.format,
                "notes": list(self.notes)}


def score_to_label(score: float) -> str:
    return "a" if score > 0 else ("b" if score < 0 else "tie")


class Annotations:
    """Long-form votes: ``pair_id``, ``annotator_id``, ``label`` (a/b/tie), ``score`` in [-2, 2].

    Optional columns: ``shown_order`` ("ab" when response_a was shown first, "ba" when second) for
    position bias, and any metadata (timestamps, comments...).
    """

    def __init__(self, df: pl.DataFrame, quarantine: pl.DataFrame | None = None,
                 source: SourceInfo | None = None) -> None:
        missing = [c for c in ("pair_id", "annotator_id") if c not in df.columns]
        if missing:
            raise InputError(f"annotations need columns {missing}", column=missing[0])
        if "score" not in df.columns and "label" not in df.columns:
            raise InputError("annotations need a 'label' or 'score' column", column="label")
        if "score" not in df.columns:
            df = df.with_columns(
                pl.col("label").replace_strict({"a": 1.0, "b": -1.0, "tie": 0.0}, return_dtype=pl.Float64)
                .alias("score"))
        if "label" not in df.columns:
            df = df.with_columns(
                pl.when(pl.col("score") > 0).then(pl.lit("a"))
                .when(pl.col("score") < 0).then(pl.lit("b")).otherwise(pl.lit("tie")).alias("label"))
        df = df.with_columns(pl.col("pair_id").cast(pl.Utf8), pl.col("annotator_id").cast(pl.Utf8),
                             pl.col("score").cast(pl.Float64))
        self.df = df
        self.quarantine = quarantine if quarantine is not None else empty_quarantine()
        self.source = source or SourceInfo(rows_read=df.height)

    def __len__(self) -> int:
        return self.df.height

    @property
    def annotators(self) -> list[str]:
        return sorted(self.df["annotator_id"].unique().to_list())

    def filter_pairs(self, pair_ids: Iterable[str]) -> Annotations:
        ids = pl.Series(list(pair_ids), dtype=pl.Utf8)
        return Annotations(self.df.filter(pl.col("pair_id").is_in(ids.implode())), self.quarantine, self.source)

    def flipped(self, pair_ids: Iterable[str]) -> Annotations:
        """Swap a/b for the given pairs (labels, scores and shown order follow)."""
        ids = pl.Series(list(pair_ids), dtype=pl.Utf8).implode()
        hit = pl.col("pair_id").is_in(ids)
        df = self.df.with_columns(
            pl.when(hit).then(-pl.col("score")).otherwise(pl.col("score")).alias("score"),
            pl.when(hit).then(pl.col("label").replace({"a": "b", "b": "a"})).otherwise(pl.col("label"))
            .alias("label"))
        if "shown_order" in df.columns:
            df = df.with_columns(pl.when(hit).then(pl.col("shown_order").replace({"ab": "ba", "ba": "ab"}))
                                 .otherwise(pl.col("shown_order")).alias("shown_order"))
        return Annotations(df, self.quarantine, self.source)

    def consensus(self) -> pl.DataFrame:
        """Per pair: vote counts, mean score, and the consensus label.

        The consensus is the plurality label among a/b/tie; a plurality tie is broken by the sign of
        the mean graded score, and is "tie" when that is 0 as well.
        """
        d = self.df.group_by("pair_id").agg(
            pl.len().alias("n_votes"),
            (pl.col("label") == "a").sum().alias("votes_a"),
            (pl.col("label") == "b").sum().alias("votes_b"),
            (pl.col("label") == "tie").sum().alias("votes_tie"),
            pl.col("score").mean().alias("mean_score"),
        )
        top = pl.max_horizontal("votes_a", "votes_b", "votes_tie")
        n_top = ((pl.col("votes_a") == top).cast(pl.Int8) + (pl.col("votes_b") == top).cast(pl.Int8)
                 + (pl.col("votes_tie") == top).cast(pl.Int8))
        by_score = (pl.when(pl.col("mean_score") > 0).then(pl.lit("a"))
                    .when(pl.col("mean_score") < 0).then(pl.lit("b")).otherwise(pl.lit("tie")))
        unique_top = (pl.when(pl.col("votes_a") == top).then(pl.lit("a"))
                      .when(pl.col("votes_b") == top).then(pl.lit("b")).otherwise(pl.lit("tie")))
        return d.with_columns(pl.when(n_top == 1).then(unique_top).otherwise(by_score).alias("consensus")) \
            .sort("pair_id")

    def to_polars(self) -> pl.DataFrame:
        return self.df

    def to_pandas(self) -> pd.DataFrame:
        return self.df.to_pandas()

    def _repr_html_(self) -> str:
        from prefaudit.reprs import table_html

        head = self.df.head(5)
        return (f"<div><b>Annotations</b>: {self.df.height} votes by {len(self.annotators)} annotators"
                f" on {self.df['pair_id'].n_unique()} pairs{table_html(head.columns, head.rows())}</div>")

    def __repr__(self) -> str:
        return f"Annotations({self.df.height} votes, {len(self.annotators)} annotators)"


@dataclass
class PreferenceSet:
    """Pairs, one row each: pair_id, prompt, chosen, rejected, tie (+ chosen_side with annotations) + metadata.

    ``quarantine`` holds the input records that could not form a pair (with reason codes);
    ``source.rows_read`` = pairs + quarantined for a pairs file.
    """

    df: pl.DataFrame
    annotations: Annotations | None = None
    quarantine: pl.DataFrame = field(default_factory=empty_quarantine)
    source: SourceInfo = field(default_factory=SourceInfo)

    def __post_init__(self) -> None:
        df = self.df
        for c in CORE_COLUMNS:
            if c not in df.columns:
                raise InputError(f"a PreferenceSet needs column {c!r}", column=c)
            if df.schema[c] != pl.Utf8:
                raise InputError(f"column {c!r} must be text, got {df.schema[c]}", column=c)
        if "tie" not in df.columns:
            df = df.with_columns(pl.lit(False).alias("tie"))
        order = [*CORE_COLUMNS, "tie"] + [c for c in df.columns if c not in (*CORE_COLUMNS, "tie")]
        self.df = df.select(order)
        if self.df["pair_id"].n_unique() != self.df.height:
            dup = self.df.filter(pl.col("pair_id").is_duplicated())["pair_id"][0]
            raise InputError(f"duplicate pair_id {dup!r}", column="pair_id")

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Sequence[dict[str, Any]], **kw: Any) -> PreferenceSet:
        """From flat dicts with prompt/chosen/rejected (ids made from content when absent)."""
        from prefaudit.data.load import load

        return load(list(records), **kw)

    @classmethod
    def from_polars(cls, df: pl.DataFrame, **kw: Any) -> PreferenceSet:
        from prefaudit.data.load import load

        return load(df, **kw)

    @classmethod
    def from_pandas(cls, df: pd.DataFrame, **kw: Any) -> PreferenceSet:
        from prefaudit.data.load import load

        return load(df, **kw)

    # ---- views --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.df.height

    @property
    def pair_ids(self) -> list[str]:
        return self.df["pair_id"].to_list()

    @property
    def metadata_columns(self) -> list[str]:
        return [c for c in self.df.columns if c not in (*CORE_COLUMNS, "tie", "chosen_side")]

    @property
    def has_annotations(self) -> bool:
        return self.annotations is not None and len(self.annotations) > 0

    def to_polars(self) -> pl.DataFrame:
        return self.df

    def to_pandas(self) -> pd.DataFrame:
        return self.df.to_pandas()

    def head(self, n: int = 5) -> pl.DataFrame:
        return self.df.head(n)

    def responses_ab(self) -> pl.DataFrame:
        """pair_id, response_a, response_b (requires ``chosen_side``; else chosen is taken as a)."""
        if "chosen_side" not in self.df.columns:
            return self.df.select("pair_id", pl.col("chosen").alias("response_a"),
                                  pl.col("rejected").alias("response_b"))
        a_is_chosen = pl.col("chosen_side") != "b"
        return self.df.select(
            "pair_id",
            pl.when(a_is_chosen).then(pl.col("chosen")).otherwise(pl.col("rejected")).alias("response_a"),
            pl.when(a_is_chosen).then(pl.col("rejected")).otherwise(pl.col("chosen")).alias("response_b"))

    # ---- derived sets -------------------------------------------------------------------------
    def _with_df(self, df: pl.DataFrame) -> PreferenceSet:
        ann = self.annotations.filter_pairs(df["pair_id"]) if self.annotations is not None else None
        return replace(self, df=df, annotations=ann)

    def select(self, pair_ids: Iterable[str]) -> PreferenceSet:
        """The pairs whose ids are given (in this set's order)."""
        ids = pl.Series(list(pair_ids), dtype=pl.Utf8)
        return self._with_df(self.df.filter(pl.col("pair_id").is_in(ids.implode())))

    def drop(self, pair_ids: Iterable[str]) -> PreferenceSet:
        ids = pl.Series(list(pair_ids), dtype=pl.Utf8)
        return self._with_df(self.df.filter(~pl.col("pair_id").is_in(ids.implode())))

    def filter(self, predicate: pl.Expr | pl.Series) -> PreferenceSet:
        return self._with_df(self.df.filter(predicate))

    def sample(self, n: int, seed: int = 0) -> PreferenceSet:
        return self._with_df(self.df.sample(n=min(n, self.df.height), seed=seed, shuffle=False))

    def swapped(self, pair_ids: Iterable[str]) -> PreferenceSet:
        """Swap chosen and rejected for the given pairs (e.g. to inject or undo label flips)."""
        ids = pl.Series(list(pair_ids), dtype=pl.Utf8).implode()
        hit = pl.col("pair_id").is_in(ids)
        cols = [pl.when(hit).then(pl.col("rejected")).otherwise(pl.col("chosen")).alias("chosen"),
                pl.when(hit).then(pl.col("chosen")).otherwise(pl.col("rejected")).alias("rejected")]
        if "chosen_side" in self.df.columns:
            cols.append(pl.when(hit).then(pl.col("chosen_side").replace({"a": "b", "b": "a"}))
                        .otherwise(pl.col("chosen_side")).alias("chosen_side"))
        return replace(self, df=self.df.with_columns(cols))

    def trainable(self) -> PreferenceSet:
        """Pairs usable as DPO training data: ties left out."""
        return self.filter(~pl.col("tie"))

    # ---- output -------------------------------------------------------------------------------
    def write(self, path: str | Path) -> Path:
        """Write all columns, by extension: .jsonl (.gz ok), .json, .csv or .parquet."""
        from prefaudit.data.io import write_frame

        return write_frame(self.df, path)

    def to_trl_records(self, weight: pl.Series | None = None) -> list[dict[str, Any]]:
        """TRL's standard format: prompt/chosen/rejected (+ weight), ties excluded."""
        df = self.df.filter(~pl.col("tie")).select("prompt", "chosen", "rejected")
        if weight is not None:
            df = df.with_columns(weight.alias("weight"))
        return df.to_dicts()

    def summary(self) -> dict[str, Any]:
        return {"pairs": self.df.height, "quarantined": self.quarantine.height,
                "ties": int(self.df["tie"].sum()), "annotations": 0 if self.annotations is None else
                len(self.annotations), "metadata_columns": self.metadata_columns}

    def _repr_html_(self) -> str:
        from prefaudit.reprs import esc, table_html

        s = self.summary()
        head = self.df.select("pair_id", "prompt", "chosen", "rejected", *self.df.columns[5:8]).head(5)
        parts = [f"<b>PreferenceSet</b>: {s['pairs']} pairs, {s['quarantined']} quarantined, "
                 f"{s['ties']} ties", f" from <code>{esc(self.source.path or 'memory')}</code>",
                 table_html(head.columns, head.rows(), limit=60)]
        if self.annotations is not None:
            parts.append(self.annotations._repr_html_())
        return "<div class='prefaudit-set'>" + "".join(parts) + "</div>"

    def __repr__(self) -> str:
        s = self.summary()
        return (f"PreferenceSet({s['pairs']} pairs, {s['quarantined']} quarantined, {s['ties']} ties, "
                f"source={html.escape(str(self.source.path))})")
