"""Plain display tables for the report: every cell formatted as a short string (escaped later by jinja).

Dataset values are cut with :func:`prefaudit.reprs.truncate` and invisible bidi controls are made
visible with :func:`prefaudit.reprs.show_invisible`; the template's autoescaping does the HTML escaping.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from prefaudit.reprs import show_invisible, truncate

CELL_CHARS = 160
TABLE_ROWS = 20
TABLE_COLUMNS = 14
LIST_ITEMS = 5
COLLAPSE_ROWS = 50


def cell(value: Any, limit: int = CELL_CHARS) -> str:
    """One table cell as display text: numbers to 4 significant digits, lists joined, text cut."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return str(int(value)) if value.is_integer() and abs(value) < 1e6 else f"{value:.4g}"
    if isinstance(value, (list, tuple, pl.Series)):
        items = list(value)
        if any(isinstance(v, str) for v in items):  # e.g. example prompts: one per line
            shown = [cell(v, limit) for v in items[:LIST_ITEMS]]
            more = [f"… {len(items) - LIST_ITEMS} more"] if len(items) > LIST_ITEMS else []
            return "\n".join(f"• {v}" for v in shown) + "".join(f"\n{m}" for m in more) if len(items) > 1 \
                else (shown[0] if shown else "")
        return ", ".join(cell(v, limit) for v in items[:20]) + (", …" if len(items) > 20 else "")
    elif isinstance(value, Mapping):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return show_invisible(truncate(text, limit))


def clip(text: Any, limit: int, tail: bool = False) -> str:
    """Dataset text stripped and cut for display (``tail=True`` keeps the end, e.g. a prompt's last turn)."""
    s = "" if text is None else str(text).strip()
    if len(s) > limit:
        s = "…" + s[-(limit - 1):] if tail else s[: limit - 1] + "…"
    return show_invisible(s)


@dataclass
class Table:
    """A titled table of display strings; ``total`` is the row count before cutting to ``rows``."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    total: int
    numeric: list[bool] = field(default_factory=list)
    note: str | None = None
    key: str = ""
    collapsed: bool = False

    @property
    def cut(self) -> bool:
        return self.total > len(self.rows)


def frame_table(title: str, frame: pl.DataFrame, max_rows: int = TABLE_ROWS,
                max_columns: int = TABLE_COLUMNS, note: str | None = None) -> Table:
    """A polars frame as a :class:`Table` (the first ``max_rows`` rows and ``max_columns`` columns)."""
    cols = frame.columns[:max_columns]
    head = frame.head(max_rows).select(cols)
    numeric = [frame.schema[c].is_numeric() for c in cols]
    rows = [[cell(v) for v in r] for r in head.iter_rows()]
    if len(frame.columns) > max_columns:
        extra = f"{len(frame.columns) - max_columns} more columns not shown"
        note = f"{note}; {extra}" if note else extra
    return Table(show_invisible(title), [cell(c) for c in cols], rows, frame.height, numeric, note)


def mapping_table(title: str, mapping: Mapping[str, Any], max_rows: int = 40) -> Table:
    """A dict of scalars (nested values shown compactly) as a two-column table."""
    items = list(mapping.items())
    rows = [[cell(k), cell(v)] for k, v in items[:max_rows]]
    numeric = [False, all(isinstance(v, (int, float)) and not isinstance(v, bool) for _, v in items)]
    return Table(show_invisible(title), ["key", "value"], rows, len(items), numeric)


def records_frame(value: Sequence[Any]) -> pl.DataFrame | None:
    """A list of dict records as a frame (None when it is not one)."""
    if not value or not all(isinstance(r, Mapping) for r in value):
        return None
    try:
        return pl.DataFrame(list(value), infer_schema_length=None)
    except Exception:  # heterogeneous records: stringify every value
        keys = list(dict.fromkeys(k for r in value for k in r))
        return pl.DataFrame([{k: None if r.get(k) is None else str(r.get(k)) for k in keys} for r in value],
                            schema=dict.fromkeys(keys, pl.Utf8))


def detail_tables(details: Mapping[str, Any], max_rows: int = TABLE_ROWS, first: Sequence[str] = (),
                  folded: Sequence[str] = ()) -> list[Table]:
    """Every detail of an analyzer result as a table: frames, lists of records, dicts, lists, scalars.

    Keys in ``first`` come first (in that order); keys in ``folded``, and tables longer than
    :data:`COLLAPSE_ROWS` rows, are marked ``collapsed`` (the report folds them away). Scalars are
    gathered in one "details" table at the top.
    """
    rank = {k: i for i, k in enumerate(first)}
    tables: list[Table] = []
    scalars: dict[str, Any] = {}
    for key, value in sorted(details.items(), key=lambda kv: rank.get(str(kv[0]), len(rank))):
        title = str(key).replace("_", " ")
        frame = value if isinstance(value, pl.DataFrame) else (
            records_frame(value) if isinstance(value, (list, tuple)) else None)
        if frame is not None:
            if not frame.width:
                continue
            t = frame_table(title, frame, max_rows)
        elif isinstance(value, Mapping):
            if not value:
                continue
            t = mapping_table(title, value)
        else:
            scalars[str(key)] = value
            continue
        t.key, t.collapsed = str(key), str(key) in folded or t.total > COLLAPSE_ROWS
        tables.append(t)
    if scalars:
        tables.insert(0, mapping_table("details", scalars))
    return tables
