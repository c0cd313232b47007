"""The pair browser's data: the N most suspicious pairs as JSON, safe inside ``<script type=application/json>``.

:func:`safe_json` escapes every ``<``, ``>`` and ``&`` (and U+2028/U+2029) as ``\\uXXXX``, so no text in
the data can close the script element (``</script>``) or open a comment; ``JSON.parse`` restores them.
Texts are cut to :data:`EMBED_CHARS` (a prompt keeps its end: its last turn decides); the page's own
script renders them with ``textContent`` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from prefaudit.report.model import CORE, analyzer_columns, ranked, with_reasons, with_texts
from prefaudit.reprs import show_invisible

EMBED_CHARS = 1500
META_COLUMNS = 8
META_CHARS = 200
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_TABLE = str.maketrans(_ESCAPES)


def safe_json(obj: Any) -> str:
    """Compact JSON that is inert inside an HTML ``<script>`` element (strict JSON: no NaN)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                      default=str).translate(_TABLE)


def _cut(text: Any, limit: int, tail: bool = False) -> tuple[str, bool]:
    """Text cut to ``limit`` characters (keeping the end with ``tail``), bidi controls made visible."""
    s = "" if text is None else str(text)
    if len(s) <= limit:
        return show_invisible(s), False
    return show_invisible("…" + s[-(limit - 1):] if tail else s[: limit - 1] + "…"), True


def _num(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return round(v, 4) if v == v and abs(v) != float("inf") else None


@dataclass
class BrowserData:
    """What the template needs besides the JSON: the option lists and the counts for the caption."""

    json: str
    analyzers: list[str]
    reasons: list[str]
    embedded: int
    flagged: int | None
    total: int


def browser_data(pairs: pl.DataFrame, texts: pl.DataFrame | None, max_pairs: int,
                 pairs_out: str | None, is_live: bool) -> BrowserData:
    """The ``max_pairs`` most suspicious flagged pairs with texts, flags, scores, reasons and metadata.

    Rows: ``[id, prompt, chosen, rejected, flag indexes, scores (per analyzer), reasons, metadata, cut]``
    where ``cut`` lists which of prompt/chosen/rejected were shortened for embedding.
    """
    names = analyzer_columns(pairs)
    flagged = None
    if is_live and names:
        flagged = int(pairs.select(pl.any_horizontal([pl.col(f"{a}_flag").fill_null(False) for a in names]).sum()).item())
    top = ranked(pairs, max(0, max_pairs)) if names else pairs.head(0)
    top = with_reasons(with_texts(top, texts))
    meta_cols = [] if texts is None else [
        c for c in texts.columns
        if c not in (*CORE, "tie", "chosen_side") and not c.endswith(("_score", "_flag", "_reasons"))
        and c not in ("n_flags", "min_score", "flags") and texts.schema[c] != pl.Object
        and not any(c.startswith(f"{a}_") for a in names)
    ][:META_COLUMNS]
    if texts is not None and meta_cols and not all(c in top.columns for c in meta_cols):
        top = top.join(texts.select("pair_id", *[c for c in meta_cols if c not in top.columns]),
                       on="pair_id", how="left", maintain_order="left")
    rows = []
    reasons: set[str] = set()
    for r in top.iter_rows(named=True):
        prompt, cp = _cut(r.get("prompt"), EMBED_CHARS, tail=True)
        chosen, cc = _cut(r.get("chosen"), EMBED_CHARS)
        rejected, cr = _cut(r.get("rejected"), EMBED_CHARS)
        flags = [i for i, a in enumerate(names) if r.get(f"{a}_flag")]
        scores = [_num(r.get(f"{a}_score")) for a in names]
        why = [show_invisible(str(x)) for x in dict.fromkeys(r.get("_reasons") or [])]
        reasons.update(why)
        meta = [_cut(r.get(c), META_CHARS)[0] if r.get(c) is not None else None for c in meta_cols]
        rows.append([_cut(r.get("pair_id"), META_CHARS)[0], prompt, chosen, rejected, flags, scores, why, meta,
                     [i for i, c in enumerate((cp, cc, cr)) if c]])
    payload = {"analyzers": names, "meta": [show_invisible(c) for c in meta_cols], "rows": rows, "embedded": len(rows),
               "flagged": flagged, "total": pairs.height, "pairs_out": pairs_out, "live": is_live,
               "embed_chars": EMBED_CHARS}
    return BrowserData(safe_json(payload), names, sorted(reasons), len(rows), flagged, pairs.height)
