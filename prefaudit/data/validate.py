"""A validation report for a loaded PreferenceSet: counts, quarantine reasons, and the accounting check."""

from __future__ import annotations

from typing import Any

import polars as pl

from prefaudit.data.preference_set import PreferenceSet


def _reasons(q: pl.DataFrame) -> dict[str, int]:
    if q.height == 0:
        return {}
    counts = q.group_by("reason").len().sort(["len", "reason"], descending=[True, False])
    return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))


def votes_are_rows(ps: PreferenceSet) -> bool:
    """True for a single long-form file, whose rows are votes rather than pairs."""
    return any(n.startswith("rows are votes") for n in ps.source.notes)


def report(ps: PreferenceSet, target: pl.DataFrame | None = None, target_path: str | None = None) -> dict[str, Any]:
    """Everything ``prefaudit validate`` prints, as a JSON-ready dict."""
    src = ps.source
    out: dict[str, Any] = {
        "input": src.to_dict(),
        "rows_read": src.rows_read,
        "pairs": len(ps),
        "ties": int(ps.df["tie"].sum()),
        "quarantined": ps.quarantine.height,
        "quarantine_reasons": _reasons(ps.quarantine),
    }
    ann = ps.annotations
    if ann is not None:
        out["annotations"] = {
            "path": ann.source.path, "rows_read": ann.source.rows_read, "used": len(ann),
            "quarantined": ann.quarantine.height, "quarantine_reasons": _reasons(ann.quarantine),
            "annotators": len(ann.annotators), "notes": list(ann.source.notes)}
    if votes_are_rows(ps) and ann is not None:
        expected = len(ann) + ann.quarantine.height
        out["accounting"] = {"rule": "rows read = votes used + votes quarantined", "ok": src.rows_read == expected}
    else:
        out["accounting"] = {"rule": "rows read = pairs + quarantined",
                             "ok": src.rows_read == len(ps) + ps.quarantine.height}
        if ann is not None:
            out["accounting"]["annotations_ok"] = ann.source.rows_read == len(ann) + ann.quarantine.height
    if target is not None:
        out["target"] = {"path": target_path, "prompts": target.height}
    return out


def quarantine_table(ps: PreferenceSet) -> pl.DataFrame:
    """Pairs and annotation quarantine in one table, with a ``table`` column ("pairs" / "annotations")."""
    parts = [ps.quarantine.with_columns(pl.lit("pairs").alias("table"))]
    if ps.annotations is not None:
        parts.append(ps.annotations.quarantine.with_columns(pl.lit("annotations").alias("table")))
    return pl.concat(parts).select("table", *ps.quarantine.columns)


def format_report(r: dict[str, Any]) -> str:
    """Plain-text summary (what ``prefaudit validate`` prints)."""
    src = r["input"]
    lines = [f"{src['path'] or 'input'}  ({src['format']}; sha256 {(src['sha256'] or '-')[:12]})",
             f"  rows read     {r['rows_read']:,}",
             f"  pairs         {r['pairs']:,}  (ties {r['ties']:,})",
             f"  quarantined   {r['quarantined']:,}"]
    lines += [f"    {k:<20}{v:,}" for k, v in r["quarantine_reasons"].items()]
    a = r.get("annotations")
    if a:
        lines.append(f"  annotations   {a['used']:,} used, {a['quarantined']:,} quarantined of {a['rows_read']:,} "
                     f"rows read; {a['annotators']} annotators" + (f"  ({a['path']})" if a["path"] else ""))
        lines += [f"    {k:<20}{v:,}" for k, v in a["quarantine_reasons"].items()]
    if "target" in r:
        lines.append(f"  target        {r['target']['prompts']:,} prompts  ({r['target']['path']})")
    acc = r["accounting"]
    ok = acc["ok"] and acc.get("annotations_ok", True)
    lines.append(f"  accounting    {'ok' if ok else 'MISMATCH'}: {acc['rule']}")
    notes = [*src["notes"], *((a or {}).get("notes") or [])]
    lines += [f"  note: {n}" for n in dict.fromkeys(notes)]
    return "\n".join(lines)
