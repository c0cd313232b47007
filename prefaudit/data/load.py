"""Loading preference data: ``load``, ``load_annotations``, ``load_prompts``.

``load(source)`` reads a file (JSONL/.gz, JSON, CSV/TSV, Parquet) or an in-memory object (polars or
pandas frame, ``datasets.Dataset``, list of dicts), recognises its shape (:mod:`.shapes`), and returns
a :class:`PreferenceSet` in which every input row is accounted for:

- pairs file: ``source.rows_read == len(pairs) + quarantine.height``;
- annotations (a separate file, or wide-form cells): ``rows read == len(annotations) +
  annotations.quarantine.height`` (``annotations.source.rows_read``);
- a single long-form file (one row per vote, e.g. Tülu): its rows are votes, so
  ``source.rows_read == len(annotations) + annotations.quarantine.height`` and the pairs are formed
  from the votes (``PreferenceSet.quarantine`` stays empty).

Quarantine holds only records that cannot form a pair (reason codes: :data:`fields.REASONS`); empty
responses, identical responses and duplicates are kept for the hygiene analyzer. ``strict=True``
raises an InputError at the first quarantined record instead. Unusable input (a missing or empty
file, no recognisable shape, a required column absent from the whole file, duplicate pair ids when
votes refer to them) raises :class:`~prefaudit.errors.InputError` naming path, line/row and column.

Pair ids: the given ``pair_id`` (a null one is filled with the content hash), else the stable
content hash of :func:`~prefaudit.data.preference_set.content_pair_ids` (repeats get ``-2``...).
Repeated given ids in a pairs-only file are renamed ``<id>~2``, ``<id>~3``... and the original is
kept in ``source_pair_id`` (and noted); with annotations they are an InputError, because a vote
naming that id would be ambiguous.

``columns=`` maps canonical names to source columns (``{"prompt": "instruction"}``); ``labels=``
maps label values to a/b/tie or a number in [-2, 2] (``{"a-is-slightly-better": 1}``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from prefaudit.data import multi, tulu
from prefaudit.data.fields import ROW, TEXT_OR_LIST, InDoubt, frame_checks, records_to_frame
from prefaudit.data.ids import content_ids, dedupe_given_ids
from prefaudit.data.labels import LabelMap
from prefaudit.data.preference_set import (
    Annotations,
    PreferenceSet,
    SourceInfo,
    empty_quarantine,
    quarantine_frame,
)
from prefaudit.data.readers import Raw, read_source
from prefaudit.data.shapes import (
    ANNOTATOR_ALIASES,
    LABEL_ALIASES,
    PROMPT_ALIASES,
    SHAPES,
    WIDE_PREFIX,
    Ctx,
    apply_aliases,
    as_messages,
    check_format,
    detect,
    render,
    require_columns,
)
from prefaudit.errors import InputError

VOTE_FIELDS = ("annotator_id", "label", "score", "shown_order", "timestamp")


@dataclass
class _Table:
    """A checked frame (with ``__row``), its shape, and what was set aside so far."""

    raw: Raw
    shape: str
    ctx: Ctx
    df: pl.DataFrame
    quarantine: list[dict]


def _map_columns(raw: Raw, columns: Mapping[str, str] | None) -> None:
    """Apply ``columns`` (target -> source); a source absent from the input is an InputError."""
    if not columns:
        return
    present = set(raw.columns)
    mapping = {}
    for target, src in columns.items():
        if src in present:
            mapping[src] = target
        elif target not in present:
            raise InputError(f"mapped column {src!r} (for {target!r}) is absent; found {sorted(present)[:20]}",
                             path=raw.path, column=src)
    raw.rename(mapping)


def _checked(raw: Raw, required: Mapping[str, str], optional: Mapping[str, str]) -> tuple[pl.DataFrame, list[dict]]:
    if raw.df is not None:
        df, q = frame_checks(raw.df, raw.where, required, optional, raw.coerced,
                             raw.recheck if raw.lines is not None else None)
    else:
        df, q = records_to_frame(raw.records or [], raw.where, required, optional, raw.notes)
    return df, [*raw.quarantine, *q]


def _checked_retry(raw: Raw, prepare: Any) -> tuple[Raw, pl.DataFrame, list[dict], Any]:
    """``prepare(raw) -> (required, optional, extra)`` then check; on doubt re-read exactly and redo."""
    for _ in range(2):
        required, optional, extra = prepare(raw)
        try:
            df, q = _checked(raw, required, optional)
            return raw, df, q, extra
        except InDoubt:
            raw = raw.exact()
    raise AssertionError("unreachable: the exact read is never in doubt")


def _table(source: Any, fmt: str, columns: Mapping[str, str] | None, labels: Mapping[Any, Any] | None,
           with_annotations: bool) -> _Table:
    """Read, map columns, detect the shape and check the required fields (re-reading exactly if in doubt)."""
    check_format(fmt)
    raw = read_source(source)
    for _ in range(2):
        _map_columns(raw, columns)
        ctx = Ctx(raw.path or raw.where, labels)
        shape = fmt
        if fmt == "tulu" or (fmt == "auto" and tulu.looks_like_tulu(raw.columns)):
            tulu.prepare(raw, ctx.notes)
            shape = "tulu"
        apply_aliases(raw, ctx)
        try:
            if shape == "auto":
                shape = detect(raw, with_annotations)
            elif with_annotations and shape != "pairs":
                raise InputError(f"format {shape!r} cannot take a separate annotations file (use 'pairs')",
                                 path=raw.path)
            spec = SHAPES["annotations-long" if shape == "tulu" else shape]
            require_columns(raw, spec.name)
            df, q = _checked(raw, spec.required, spec.optional)
            return _Table(raw, shape, ctx, df, q)
        except InDoubt:
            raw = raw.exact()
    raise AssertionError("unreachable: the exact read is never in doubt")


def _fail_strict(entries: list[dict], path: str | None, line_unit: str) -> None:
    if not entries:
        return
    e = entries[0]
    where = {"line": e["row"]} if line_unit == "line" else {"row": e["row"]}
    raise InputError(f"{e['reason']}: {e['detail']}", path=e.get("source") or path, column=e.get("column"), **where)


def _assign_ids(df: pl.DataFrame, notes: list[str], *, unique: bool, id_cols: tuple[str, ...]) -> pl.DataFrame:
    """Given ids (nulls filled from content, repeats renamed or refused) or content hashes."""
    if "pair_id" not in df.columns:
        return df.with_columns(content_ids(df, id_cols))
    nulls = df["pair_id"].is_null()
    if nulls.any():
        filled = content_ids(df.filter(nulls), id_cols)
        ids = df["pair_id"].to_list()
        it = iter(filled.to_list())
        df = df.with_columns(pl.Series("pair_id", [next(it) if v is None else v for v in ids], dtype=pl.Utf8))
        notes.append(f"{int(nulls.sum())} pair(s) without a pair_id got a content-hash id")
    new, orig, n = dedupe_given_ids(df["pair_id"])
    if orig is None:
        return df
    if not unique:
        dup = df.filter(df["pair_id"].is_duplicated())
        raise InputError(f"pair_id {dup['pair_id'][0]!r} appears more than once; votes naming it would be "
                         "ambiguous", row=dup[ROW][1] if ROW in dup.columns else None, column="pair_id")
    notes.append(f"{n} repeated pair_id(s) renamed '<id>~2', '<id>~3'... (original in source_pair_id)")
    return df.with_columns(new.alias("pair_id"), orig.alias("source_pair_id"))


def _source(t: _Table, rows_read: int, extra: list[str] = ()) -> SourceInfo:
    notes = [*t.raw.notes, *t.ctx.notes, *extra]
    return SourceInfo(path=t.raw.path, sha256=t.raw.sha256, rows_read=rows_read,
                      format=f"{t.raw.fmt}/{t.shape}", notes=tuple(dict.fromkeys(notes)))


def _pair_set(df: pl.DataFrame, annotations: Annotations | None, quarantine: list[dict],
              source: SourceInfo) -> PreferenceSet:
    df = df.drop([c for c in df.columns if c.startswith("__")])
    for c in ("prompt", "chosen", "rejected"):
        if df.schema[c] != pl.Utf8:
            df = df.with_columns(pl.col(c).cast(pl.Utf8))
    q = quarantine_frame(quarantine) if quarantine else empty_quarantine()
    return PreferenceSet(df, annotations=annotations, quarantine=q, source=source)


# ---- the three annotation flows ------------------------------------------------------------------
def _from_long(t: _Table, strict: bool) -> PreferenceSet:
    lm = LabelMap(t.ctx.labels)
    pair_cols = tulu.PAIR_COLUMNS if t.shape == "tulu" else None
    swap = tulu.SWAP_COLUMNS if t.shape == "tulu" else []
    swap = [p for p in swap if p[0] in t.df.columns and p[1] in t.df.columns]
    pairs_ab, votes, vq, notes = multi.split_long(t.df, lm, t.ctx.where, [c for c in pair_cols or []
                                                  if c in t.df.columns] if pair_cols else None, swap)
    ann_q = [*t.quarantine, *vq]
    t.raw.fix_rows(ann_q)
    if strict:
        _fail_strict(ann_q, t.raw.path, t.raw.row_unit)
    pairs, pq = multi.attach(pairs_ab, votes, t.ctx.where)
    source = _source(t, t.raw.rows_read, [*notes, "rows are votes: rows read = votes used + votes quarantined"])
    ann = multi.votes_to_annotations(votes, quarantine_frame(ann_q) if ann_q else empty_quarantine(), source)
    return _pair_set(pairs, ann, pq, source)


def _from_wide(t: _Table, strict: bool) -> PreferenceSet:
    notes: list[str] = []
    df = _assign_ids(t.df, notes, unique=False, id_cols=("prompt", "response_a", "response_b"))
    pairs_ab, votes, vq, cells = multi.wide_votes(df, LabelMap(t.ctx.labels), t.ctx.where)
    pairs, pq = multi.attach(pairs_ab, votes, t.ctx.where)
    q = [*t.quarantine, *pq]
    t.raw.fix_rows([*q, *vq])
    if strict:
        _fail_strict([*q, *vq], t.raw.path, t.raw.row_unit)
    source = _source(t, t.raw.rows_read, notes)
    ann_source = SourceInfo(path=t.raw.path, sha256=t.raw.sha256, rows_read=cells, format=f"{t.raw.fmt}/wide",
                            notes=("rows are the non-empty label_<annotator> cells",))
    ann = multi.votes_to_annotations(votes, quarantine_frame(vq) if vq else empty_quarantine(), ann_source)
    return _pair_set(pairs, ann, q, source)


def _from_pairs(t: _Table, annotations: Any, columns: Mapping[str, str] | None, strict: bool) -> PreferenceSet:
    notes: list[str] = []
    df = _assign_ids(t.df, notes, unique=False, id_cols=("prompt", "response_a", "response_b"))
    ann = annotations if isinstance(annotations, Annotations) else _load_annotations(
        annotations, "auto", _vote_columns(columns), t.ctx.labels, strict)
    votes = ann.df
    if multi.SOURCE_ROW in votes.columns:
        votes = votes.rename({multi.SOURCE_ROW: ROW})
    else:
        votes = votes.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    known = df["pair_id"].implode()
    unknown = ~pl.col("pair_id").is_in(known)
    raw_ids = _raw_pair_ids(t.raw)
    where = ann.source.path or "annotations"
    in_q = pl.col("pair_id").is_in(pl.Series(sorted(raw_ids), dtype=pl.Utf8).implode())
    vq = multi._quarantine_rows(votes, unknown & in_q, where, "pair_quarantined",
                                lambda r: f"pair {r['pair_id']!r} was quarantined in the pairs file", "pair_id")
    vq += multi._quarantine_rows(votes, unknown & ~in_q, where, "unknown_pair_id",
                                 lambda r: f"pair_id {r['pair_id']!r} is not in the pairs file", "pair_id")
    if vq and strict:
        _fail_strict(vq, ann.source.path, "row")
    votes = votes.filter(~unknown)
    pairs, pq = multi.attach(df, votes, t.ctx.where)
    q = [*t.quarantine, *pq]
    t.raw.fix_rows(q)
    if strict:
        _fail_strict(q, t.raw.path, t.raw.row_unit)
    ann_q = pl.concat([ann.quarantine, quarantine_frame(vq)]) if vq else ann.quarantine
    ann = multi.votes_to_annotations(votes, ann_q, ann.source)
    return _pair_set(pairs, ann, q, _source(t, t.raw.rows_read, notes))


def _raw_pair_ids(raw: Raw) -> set[str]:
    if raw.df is not None:
        return set() if "pair_id" not in raw.df.columns else set(
            raw.df["pair_id"].drop_nulls().cast(pl.Utf8).to_list())
    return {str(rec["pair_id"]) for _, rec in raw.records or [] if rec.get("pair_id") is not None}


def _vote_columns(columns: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (columns or {}).items() if k in (*VOTE_FIELDS, "pair_id")}


def _pair_columns(columns: Mapping[str, str] | None, with_annotations: bool) -> dict[str, str]:
    if not with_annotations:
        return dict(columns or {})
    return {k: v for k, v in (columns or {}).items() if k not in VOTE_FIELDS}


def _prompt_frame(source: Any, columns: Mapping[str, str] | None) -> tuple[Raw, pl.DataFrame | None, list[dict]]:
    """(raw, checked frame with a prompt column or None when there is none, quarantine)."""
    def prepare(raw: Raw) -> tuple[dict[str, str], dict[str, str], bool]:
        _map_columns(raw, columns)
        alias = next((a for a in PROMPT_ALIASES if a in raw.columns), None)
        if "prompt" not in raw.columns and alias is not None:
            raw.rename({alias: "prompt"})
        has = "prompt" in raw.columns
        return ({"prompt": TEXT_OR_LIST}, {"prompt_id": "id"}, True) if has else ({}, {}, False)

    raw, df, q, has_prompt = _checked_retry(read_source(source), prepare)
    return (raw, df, q) if has_prompt else (raw, None, [])


# ---- public API -----------------------------------------------------------------------------------
def load(source: Any, format: str = "auto", columns: Mapping[str, str] | None = None,
         labels: Mapping[Any, Any] | None = None, annotations: Any = None, strict: bool = False) -> PreferenceSet:
    """Load preference pairs (and optionally a separate annotations file) into a PreferenceSet."""
    if isinstance(source, PreferenceSet) and annotations is None:
        return source
    with_ann = annotations is not None
    t = _table(source, format, _pair_columns(columns, with_ann) if with_ann else columns, labels, with_ann)
    if t.shape in ("annotations-long", "tulu"):
        return _from_long(t, strict)
    if t.shape == "annotations-wide":
        return _from_wide(t, strict)
    if t.shape == "pairs":
        if not with_ann:
            raise InputError("pairs with response_a/response_b need an annotations file", path=t.raw.path)
        return _from_pairs(t, annotations, columns, strict)
    conv = SHAPES[t.shape].convert(t.df, t.ctx)  # type: ignore[misc]
    q = [*t.quarantine, *conv.quarantine]
    t.raw.fix_rows(q)
    if strict:
        _fail_strict(q, t.raw.path, t.raw.row_unit)
    notes: list[str] = []
    df = _assign_ids(conv.df, notes, unique=True, id_cols=("prompt", "chosen", "rejected"))
    return _pair_set(df, None, q, _source(t, t.raw.rows_read, notes))


def _load_annotations(source: Any, format: str, columns: Mapping[str, str] | None,
                      labels: Mapping[Any, Any] | None, strict: bool) -> Annotations:
    def prepare(raw: Raw) -> tuple[dict[str, str], dict[str, str], tuple[Ctx, bool]]:
        _map_columns(raw, columns)
        ctx = Ctx(raw.path or raw.where, labels)
        for target, aliases in (("annotator_id", ANNOTATOR_ALIASES), ("label", LABEL_ALIASES)):
            alias = next((a for a in aliases if a in raw.columns), None)
            if target not in raw.columns and alias is not None:
                raw.rename({alias: target})
                ctx.notes.append(f"column {alias!r} used as {target!r}")
        cols = set(raw.columns)
        wide = format == "annotations-wide" or (format == "auto" and "label" not in cols
                                                 and any(c.startswith(WIDE_PREFIX) for c in cols))
        required = {"pair_id": "id"} if wide else {"pair_id": "id", "annotator_id": "id", "label": "scalar"}
        for c in required:
            if c not in cols:
                raise InputError(f"annotations need column {c!r} (long form: pair_id, annotator_id, label; wide "
                                 f"form: pair_id + {WIDE_PREFIX}<annotator> columns); found {sorted(cols)[:20]}",
                                 path=raw.path, column=c)
        return required, {} if wide else {"shown_order": "text"}, (ctx, wide)

    raw, df, q, (ctx, wide) = _checked_retry(read_source(source), prepare)
    lm = LabelMap(labels)
    notes: list[str] = []
    if wide:
        if not any(c.startswith(WIDE_PREFIX) for c in df.columns):
            raise InputError(f"no {WIDE_PREFIX}<annotator> columns", path=raw.path, column=WIDE_PREFIX + "*")
        _, votes, vq, rows_read = multi.wide_votes(df, lm, ctx.where)
        rows_read += len(q)
    else:
        votes, vq = multi.score_votes(df, lm, ctx.where)
        rows_read = raw.rows_read
        if "shown_order" in votes.columns:
            ok = votes["shown_order"].is_in(["ab", "ba"])
            if (~ok & votes["shown_order"].is_not_null()).any():
                notes.append("shown_order values other than 'ab'/'ba' were set to null")
                votes = votes.with_columns(pl.when(ok).then(pl.col("shown_order")).alias("shown_order"))
    votes, rq, note = multi.drop_repeats(votes, ctx.where)
    if note:
        notes.append(note)
    allq = [*q, *vq, *rq]
    raw.fix_rows(allq)
    if strict:
        _fail_strict(allq, raw.path, raw.row_unit)
    source_info = SourceInfo(path=raw.path, sha256=raw.sha256, rows_read=rows_read,
                             format=f"{raw.fmt}/{'annotations-wide' if wide else 'annotations-long'}",
                             notes=tuple(dict.fromkeys([*raw.notes, *ctx.notes, *notes])))
    return multi.votes_to_annotations(votes, quarantine_frame(allq) if allq else empty_quarantine(), source_info)


def load_annotations(source: Any, format: str = "auto", columns: Mapping[str, str] | None = None,
                     labels: Mapping[Any, Any] | None = None) -> Annotations:
    """Votes in long form (pair_id, annotator_id, label) or wide form (pair_id + label_<annotator>)."""
    if format not in ("auto", "annotations-long", "annotations-wide"):
        check_format(format)
    return _load_annotations(source, format, columns, labels, strict=False)


def load_prompts(source: Any, columns: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Prompts (e.g. target or eval prompts): ``prompt_id``, ``prompt`` + metadata columns.

    Any loadable file works: a ``prompt`` column (or an alias; a list of messages is rendered as in
    the TRL shape), or any pair shape (its prompts are taken). ``prompt_id`` is the given one or
    ``sha1(prompt)[:16]`` (repeats ``-2``...). Rows without a usable prompt are left out with a warning.
    """
    raw, df, q = _prompt_frame(source, columns)
    if df is None:
        ps = load(source, columns=columns)
        df = ps.df.drop("chosen", "rejected", "tie", "chosen_side", strict=False).rename({"pair_id": "source_pair_id"})
        q = ps.quarantine.to_dicts()
    elif df.schema["prompt"] != pl.Utf8:
        texts = [p if isinstance(p, str) else (render(m, "user") if (m := as_messages(p)) else None)
                 for p in df["prompt"].to_list()]
        df = df.with_columns(pl.Series("prompt", texts, dtype=pl.Utf8))
        bad = df["prompt"].is_null()
        if bad.any():
            q = [*q, *({"row": r} for r in df.filter(bad)[ROW].to_list())]
            df = df.filter(~bad)
    if q:
        raw.fix_rows(q)
        warnings.warn(f"{raw.where}: {len(q)} row(s) without a usable prompt were left out "
                      f"(first: row {q[0].get('row')})", stacklevel=2)
    hashed = content_ids(df, ("prompt",))
    if "prompt_id" in df.columns:
        given = df["prompt_id"].cast(pl.Utf8)
        hashed = dedupe_given_ids(pl.select(pl.coalesce(given, hashed)).to_series())[0]
    df = df.with_columns(hashed.alias("prompt_id"))
    df = df.drop([c for c in df.columns if c.startswith("__")])
    return df.select("prompt_id", "prompt", *[c for c in df.columns if c not in ("prompt_id", "prompt")])
