"""Per-record checks of the fields a shape needs, and the quarantine reason codes.

A record that cannot form a pair goes to the quarantine with one reason code (the first problem found,
fields checked in the shape's order). Everything else is kept, including empty responses and
identical pairs (the hygiene analyzer flags those).

Field kinds: ``text`` (a string; "" is fine), ``id`` (a string or an integer, stored as text),
``scalar`` (any non-null JSON scalar, e.g. a label), ``list`` (a list, or a string holding a JSON
list as CSV files do), ``text_or_list`` (either).

Two ways in: a typed polars frame (Parquet, in-memory frames, and the fast JSONL path) is checked
column-wise; Python records (JSON arrays, CSV, lists of dicts, and the exact JSONL path) record by
record. On the fast JSONL path a text value is "in doubt" when polars may have coerced a non-string
JSON value into it (polars reads ``3`` in a string column as ``"3"``, a list as its JSON text) or it
holds a NUL (polars turns a lone surrogate escape into one): those rows are re-read exactly, one line
each, and judged by :func:`check_record`. When a whole column's type is in doubt, or too many rows
are, the loader re-reads the whole file line by line instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from prefaudit.data.preference_set import RECORD_PREVIEW

ROW = "__row"

REASONS: dict[str, str] = {
    "invalid_json": "the line or element is not valid JSON",
    "not_an_object": "valid JSON, but not an object with named fields",
    "bad_encoding": "bytes that are not UTF-8, or a lone surrogate escape",
    "malformed_row": "a CSV record with the wrong number of fields",
    "missing_field": "a required field is absent or null",
    "not_text": "a required text field holds a number, list, object or boolean",
    "bad_messages": "a conversation is not a list of {role, content} messages",
    "no_shared_prompt": "the two conversations share no prompt prefix",
    "bad_label": "the label is not a/b/tie, a number in [-2, 2] or a mapped value",
    "bad_score": "a response score is not a number",
    "too_few_responses": "fewer than two scored responses",
    "no_annotations": "no usable vote for this pair",
    "unknown_pair_id": "the vote names a pair_id that is not in the pairs file",
    "pair_quarantined": "the vote's pair was itself quarantined",
    "repeated_rating": "an earlier rating by the same annotator of the same pair (the latest is kept)",
    "inconsistent_pair": "the row's prompt/responses differ from other rows with the same pair_id",
}

TEXT, ID, SCALAR, LIST, TEXT_OR_LIST = "text", "id", "scalar", "list", "text_or_list"


class InDoubt(Exception):
    """The fast frame may hide coerced values: re-read exactly."""


def qrow(where: str, row: int | None, reason: str, detail: str, record: Any = None,
         column: str | None = None) -> dict[str, Any]:
    """One quarantine entry (``column`` is kept for error messages, not written)."""
    return {"source": where, "row": row, "reason": reason, "detail": detail,
            "record": preview(record), "column": column}


def preview(record: Any) -> str | None:
    """The start of a record as valid UTF-8 text (undecodable bytes and lone surrogates escaped)."""
    if record is None:
        return None
    if isinstance(record, (bytes, bytearray)):
        text = bytes(record[: RECORD_PREVIEW * 4]).decode("utf-8", "backslashreplace")
    elif isinstance(record, str):
        text = record[: RECORD_PREVIEW * 2]
    else:
        try:
            text = json.dumps(record, ensure_ascii=False, default=str)[: RECORD_PREVIEW * 2]
        except (TypeError, ValueError, RecursionError):
            text = repr(record)[: RECORD_PREVIEW * 2]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:RECORD_PREVIEW]


def _kind_ok(kind: str, v: Any) -> bool:
    if kind == TEXT:
        return isinstance(v, str)
    if kind == ID:
        return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
    if kind == SCALAR:
        return isinstance(v, (str, int, float)) and not (isinstance(v, float) and v != v)
    if kind == LIST:
        return isinstance(v, (list, tuple, str))
    return isinstance(v, (str, list, tuple))  # TEXT_OR_LIST


def _bad_kind_reason(kind: str) -> str:
    return "not_text" if kind in (TEXT, ID, TEXT_OR_LIST) else ("bad_label" if kind == SCALAR else "not_text")


def check_record(rec: Mapping[str, Any], required: Mapping[str, str],
                 optional: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(reason, detail, column) for the first problem, or None when the record can form a pair."""
    for col, kind in required.items():
        v = rec.get(col)
        if v is None or (isinstance(v, float) and v != v):
            return "missing_field", f"field {col!r} is absent or null", col
        if not _kind_ok(kind, v):
            return _bad_kind_reason(kind), f"field {col!r} should be {kind}, got {type(v).__name__}", col
    for col, kind in optional.items():
        v = rec.get(col)
        if v is not None and not (isinstance(v, float) and v != v) and not _kind_ok(kind, v):
            return _bad_kind_reason(kind), f"field {col!r} should be {kind}, got {type(v).__name__}", col
    return None


def _column(name: str, values: list[Any], kind: str | None, notes: list[str]) -> pl.Series:
    """One column from Python values: text kinds as Utf8, lists as objects, metadata inferred."""
    if kind in (TEXT,):
        return pl.Series(name, values, dtype=pl.Utf8)
    if kind == ID:
        return pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.Utf8)
    if kind in (LIST, TEXT_OR_LIST):
        return pl.Series(name, values, dtype=pl.Object)
    values = [None if isinstance(v, float) and v != v and kind == SCALAR else v for v in values]
    try:
        return pl.from_dicts([{name: v} for v in values], infer_schema_length=None, strict=True)[name]
    except Exception:  # mixed value types: keep every value, as JSON text
        notes.append(f"column {name!r} mixes value types; stored as text")
        return pl.Series(name, [v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                                for v in values], dtype=pl.Utf8)


def records_to_frame(records: list[tuple[int, dict[str, Any]]], where: str, required: Mapping[str, str],
                     optional: Mapping[str, str], notes: list[str]) -> tuple[pl.DataFrame, list[dict]]:
    """Check each record; build a frame (with ``__row``) of those that pass; quarantine the rest."""
    good: list[tuple[int, dict[str, Any]]] = []
    quarantine: list[dict] = []
    for row, rec in records:
        problem = check_record(rec, required, optional)
        if problem is None:
            good.append((row, rec))
        else:
            quarantine.append(qrow(where, row, problem[0], problem[1], rec, problem[2]))
    names: dict[str, None] = {}
    for _, rec in good:
        for k in rec:
            names.setdefault(k, None)
    for k in required:
        names.setdefault(k, None)
    kinds = {**optional, **required}
    cols = [pl.Series(ROW, [r for r, _ in good], dtype=pl.Int64)]
    cols += [_column(k, [rec.get(k) for _, rec in good], kinds.get(k), notes) for k in names if k != ROW]
    return pl.DataFrame(cols), quarantine


# ---- typed frames -------------------------------------------------------------------------------
_COERCED_SCALAR = r"^\s*(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false)\s*$"


def suspicious_rows(df: pl.DataFrame, col: str) -> pl.Series:
    """``__row`` of text values that may have come from a non-string JSON value (or a lone surrogate).

    polars writes a number or boolean as its JSON text (short: the pattern runs on values of at most
    40 bytes only) and a list/object as JSON text (checked on values ending in ] or } only); it turns
    a lone high-surrogate escape into NUL (so values holding NUL are re-read too).
    """
    c = pl.col(col)
    lf = df.lazy().select(ROW, c)
    hit = pl.col("__hit")
    parts = [lf.filter(c.str.len_bytes() <= 40).select(ROW, c.str.contains(_COERCED_SCALAR).alias("__hit")),
             lf.filter(c.str.ends_with("]") | c.str.ends_with("}"))
             .select(ROW, (c.str.starts_with("[") | c.str.starts_with("{")).alias("__hit")),
             lf.select(ROW, c.str.contains("\x00", literal=True).alias("__hit"))]
    found = pl.collect_all([p.filter(hit).select(ROW) for p in parts])
    return pl.concat([f[ROW] for f in found]).unique()


def _is_list(dt: pl.DataType) -> bool:
    return isinstance(dt, (pl.List, pl.Array))


Recheck = Callable[[list[int]], dict[int, tuple[int, "dict | None", "dict | None"]]]


def frame_checks(df: pl.DataFrame, where: str, required: Mapping[str, str], optional: Mapping[str, str],
                 coerced: bool, recheck: Recheck | None = None) -> tuple[pl.DataFrame, list[dict]]:
    """Column-wise version of :func:`check_record` for a typed frame with ``__row``.

    With ``coerced`` (polars JSONL), text values that may hide a coerced value are re-read exactly
    through ``recheck`` and judged by :func:`check_record`; raises :class:`InDoubt` when a whole
    column is in doubt or too many rows are (the caller then re-reads the file exactly).
    """
    bad = pl.repeat(False, df.height, eager=True, dtype=pl.Boolean)
    doubt: list[pl.Series] = []
    reasons: list[tuple[pl.Series, str, str, str]] = []
    fixes: list[pl.Expr] = []
    for col, kind in [*required.items(), *optional.items()]:
        if col not in df.columns:
            continue
        is_req = col in required
        dt = df.schema[col]
        s = df[col]
        null = s.is_null()
        if dt == pl.Null:
            if is_req:
                reasons.append((null, "missing_field", f"field {col!r} is absent or null", col))
            continue
        if kind == TEXT or (kind == TEXT_OR_LIST and not _is_list(dt)):
            if dt != pl.Utf8:
                if coerced:
                    raise InDoubt(col)
                wrong = ~null
                reasons.append((wrong, "not_text", f"field {col!r} should be text, got {dt}", col))
            elif coerced:
                doubt.append(suspicious_rows(df, col))
        elif kind == ID:
            if dt.is_integer():
                fixes.append(pl.col(col).cast(pl.Utf8))
            elif dt != pl.Utf8:
                if coerced:
                    raise InDoubt(col)
                reasons.append((~null, "not_text", f"field {col!r} should be text or an integer, got {dt}", col))
        elif kind == SCALAR:
            if _is_list(dt) or isinstance(dt, pl.Struct):
                if coerced:
                    raise InDoubt(col)
                reasons.append((~null, "bad_label", f"field {col!r} should be a scalar, got {dt}", col))
            elif dt.is_float():
                null = null | s.is_nan()
        elif kind in (LIST, TEXT_OR_LIST):
            if not _is_list(dt) and dt != pl.Utf8:
                if coerced:
                    raise InDoubt(col)
                reasons.append((~null, "not_text", f"field {col!r} should be a list, got {dt}", col))
            elif coerced and dt == pl.Utf8:
                raise InDoubt(col)  # polars may have stringified lists mixed with strings
        if is_req:
            reasons.append((null, "missing_field", f"field {col!r} is absent or null", col))
    quarantine: list[dict] = []
    if doubt and (rows := pl.concat(doubt).unique().sort()).len():
        if recheck is None or rows.len() > max(1000, df.height // 100):
            raise InDoubt("rows")
        exact = recheck(rows.to_list())
        ok: list[int] = []
        for rec_no in rows.to_list():
            if rec_no not in exact:
                raise InDoubt("rows")
            _, rec, q = exact[rec_no]
            problem = None if rec is None else check_record(rec, required, optional)
            if q is not None:
                quarantine.append({**q, "row": rec_no})
            elif problem is not None:
                quarantine.append(qrow(where, rec_no, problem[0], problem[1], rec, problem[2]))
            else:
                ok.append(rec_no)
        in_doubt = df[ROW].is_in(rows.implode())
        bad = in_doubt & ~df[ROW].is_in(pl.Series(ok, dtype=pl.Int64).implode())
        reasons = [(mask & ~in_doubt, *rest) for mask, *rest in reasons]
    for mask, reason, detail, col in reasons:
        hit = mask & ~bad
        if hit.any():
            rows = df.filter(hit)
            for rec in rows.iter_rows(named=True):
                quarantine.append(qrow(where, rec[ROW], reason, detail, {k: v for k, v in rec.items()
                                                                         if k != ROW}, col))
            bad = bad | hit
    if fixes:
        df = df.with_columns(fixes)
    if bad.any():
        df = df.filter(~bad)
        quarantine.sort(key=lambda q: q["row"] if q["row"] is not None else -1)
    # a required text column of another type had every row quarantined: give the empty column its type
    empty = [c for c, k in required.items() if k in (TEXT, ID) and c in df.columns and df.schema[c] != pl.Utf8]
    if empty and df.height == 0:
        df = df.with_columns([pl.Series(c, [], dtype=pl.Utf8) for c in empty])
    return df, quarantine
