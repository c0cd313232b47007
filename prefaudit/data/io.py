"""Writing frames by file extension, and hashing input files."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import polars as pl

from prefaudit.errors import InputError


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def suffixes(path: str | Path) -> str:
    """The lower-case format suffix, ignoring a trailing .gz: 'x.jsonl.gz' -> '.jsonl'."""
    p = Path(path)
    sfx = [s.lower() for s in p.suffixes]
    if sfx and sfx[-1] == ".gz":
        sfx = sfx[:-1]
    return sfx[-1] if sfx else ""


def write_frame(df: pl.DataFrame, path: str | Path) -> Path:
    """Write a frame by extension: .jsonl/.ndjson (optionally .gz), .json (array), .csv, .parquet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = suffixes(path)
    if kind in (".jsonl", ".ndjson"):
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "wt", encoding="utf-8") as f:
                for row in df.iter_rows(named=True):
                    f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        else:
            df.write_ndjson(path)
    elif kind == ".json":
        path.write_text(json.dumps(df.to_dicts(), ensure_ascii=False, default=str), encoding="utf-8")
    elif kind == ".csv":
        nested = [c for c, t in df.schema.items() if isinstance(t, (pl.List, pl.Struct, pl.Array))]
        df.with_columns([pl.col(c).map_elements(json.dumps, return_dtype=pl.Utf8) for c in nested]) \
            .write_csv(path) if nested else df.write_csv(path)
    elif kind == ".parquet":
        df.write_parquet(path)
    else:
        raise InputError("unknown output format (use .jsonl, .json, .csv or .parquet)", path=str(path))
    return path
