"""Reading a source into records: files (JSONL/.gz, JSON array, CSV/TSV, Parquet) and in-memory objects.

Outcomes (every record is counted once in ``rows_read``):

- JSONL: one record per non-blank line (blank lines are skipped, not counted). The fast path is
  ``polars.read_ndjson`` (full schema inference, so no key is dropped) while another thread hashes
  the file; if polars rejects the file, or the result is in doubt (see ``fields``), the exact path
  reads line by line: a line that is not UTF-8 -> ``bad_encoding``; not JSON -> ``invalid_json``;
  JSON but not an object -> ``not_an_object``. The quarantine ``row`` is the line number.
- JSON: an array of objects (``row`` = element number), or an object wrapping one such array, or a
  single object. A file that is not valid JSON but is JSONL is read as JSONL; otherwise -> InputError
  naming the line.
- CSV (TSV for ``.tsv``): read with Python's csv module, every value as text (an empty field is
  ""); a record with the wrong number of fields -> ``malformed_row``; ``row`` = the record's first line.
- Parquet and in-memory frames keep their column types (``row`` = 1-based row number).

Unusable input raises :class:`~prefaudit.errors.InputError`: a missing file, a directory, an empty
file, a file that is not what its name says (bad gzip/Parquet), an unreadable JSON document, a CSV
header with duplicate or empty names, or an unsupported object.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from prefaudit.data.fields import ROW, qrow
from prefaudit.data.io import sha256_file, suffixes
from prefaudit.errors import InputError

BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class Raw:
    """What a reader produced: a typed frame (with ``__row``) or Python records, plus read-level quarantine."""

    where: str
    fmt: str
    rows_read: int
    df: pl.DataFrame | None = None
    records: list[tuple[int, dict[str, Any]]] | None = None
    quarantine: list[dict] = field(default_factory=list)
    sha256: str | None = None
    path: str | None = None
    notes: list[str] = field(default_factory=list)
    coerced: bool = False
    reread: Callable[[], Raw] | None = None
    row_unit: str = "row"
    lines: Callable[[set[int]], dict[int, tuple[int, bytes]]] | None = None  # record -> (line, text)

    def fix_rows(self, entries: list[dict]) -> None:
        """Turn record numbers into line numbers in quarantine entries (fast JSONL path only)."""
        if self.lines is None:
            return
        wanted = {e["row"] for e in entries if e.get("row") is not None}
        if not wanted:
            return
        mapping = self.lines(wanted)
        for e in entries:
            if e.get("row") in mapping:
                e["row"] = mapping[e["row"]][0]

    @property
    def columns(self) -> list[str]:
        if self.df is not None:
            return [c for c in self.df.columns if c != ROW]
        names: dict[str, None] = {}
        for _, rec in self.records or []:
            for k in rec:
                names.setdefault(k, None)
        return list(names)

    def sample(self, col: str, n: int = 20) -> list[Any]:
        """Up to n non-null values of a column (for shape detection)."""
        if self.df is not None:
            return self.df[col].drop_nulls().head(n).to_list() if col in self.df.columns else []
        out = []
        for _, rec in self.records or []:
            v = rec.get(col)
            if v is not None:
                out.append(v)
                if len(out) >= n:
                    break
        return out

    def rename(self, mapping: dict[str, str]) -> None:
        """Rename source -> target columns (targets already present are replaced)."""
        if not mapping:
            return
        if self.df is not None:
            drop = [t for s, t in mapping.items() if t in self.df.columns and t not in mapping]
            self.df = self.df.drop(drop).rename(mapping)
            return
        for _, rec in self.records or []:
            moved = {t: rec.pop(s) for s, t in mapping.items() if s in rec}
            for t in mapping.values():
                rec.pop(t, None)
            rec.update(moved)

    def recheck(self, rows: list[int]) -> dict[int, tuple[int, dict | None, dict | None]]:
        """Re-read the given records exactly (fast JSONL): record -> (line, parsed record, quarantine entry)."""
        assert self.lines is not None
        out = {}
        for rec_no, (lineno, line) in self.lines(set(rows)).items():
            rec, q = _parse_line(lineno, line, self.where)
            out[rec_no] = (lineno, rec, q)
        return out

    def exact(self) -> Raw:
        """The exact (record by record) version of this input."""
        if self.reread is not None:
            return self.reread()
        if self.records is not None:
            return self
        assert self.df is not None
        recs = list(zip(self.df[ROW].to_list(), self.df.drop(ROW).to_dicts(), strict=True))
        return Raw(self.where, self.fmt, self.rows_read, records=recs, quarantine=list(self.quarantine),
                   sha256=self.sha256, path=self.path, notes=list(self.notes), row_unit=self.row_unit)


# ---- helpers ----------------------------------------------------------------------------------
def has_lone_surrogate(obj: Any, depth: int = 0) -> bool:
    """True if any string (or key) holds a surrogate code point (invalid bytes or a lone \\uD8xx escape)."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if depth > 200:
        return False
    if isinstance(obj, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v, depth + 1) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return any(has_lone_surrogate(v, depth + 1) for v in obj)
    return False


def _decode(data: bytes) -> tuple[str, bool]:
    """UTF-8 text (BOM stripped) and whether invalid bytes were escaped as surrogates."""
    if data.startswith(BOM):
        data = data[len(BOM):]
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", "surrogateescape"), True


def _check_not_utf16(data: bytes, where: str) -> None:
    """A UTF-16 byte-order mark followed by UTF-16 text (NUL bytes) is unusable input."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") and b"\x00" in data[2:66]:
        raise InputError("file is UTF-16 encoded; prefaudit reads UTF-8", path=where)


def _parse_line(lineno: int, line: bytes, where: str) -> tuple[dict | None, dict | None]:
    """(record, None) or (None, quarantine entry) for one non-blank JSONL line."""
    if lineno == 1 and line.startswith(BOM):
        line = line[len(BOM):]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, qrow(where, lineno, "bad_encoding", f"invalid UTF-8 at byte {e.start} of the line", line)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, qrow(where, lineno, "invalid_json", f"{e.msg} at character {e.pos + 1}", line)
    except (RecursionError, ValueError) as e:
        return None, qrow(where, lineno, "invalid_json", f"unreadable JSON: {type(e).__name__}", line)
    if not isinstance(obj, dict):
        return None, qrow(where, lineno, "not_an_object", f"a JSON {type(obj).__name__}, not an object", line)
    if ("\\ud" in text or "\\uD" in text) and has_lone_surrogate(obj):
        return None, qrow(where, lineno, "bad_encoding", "a lone surrogate escape (\\uD800-\\uDFFF)", line)
    return obj, None


def jsonl_records(lines: Iterable[bytes], where: str) -> tuple[list[tuple[int, dict]], list[dict], int]:
    """Exact JSONL reading: (records, quarantine, rows read)."""
    records: list[tuple[int, dict]] = []
    quarantine: list[dict] = []
    n = 0
    for lineno, line in enumerate(lines, 1):
        if not (line[len(BOM):] if lineno == 1 and line.startswith(BOM) else line).strip():
            continue
        n += 1
        rec, q = _parse_line(lineno, line, where)
        if rec is not None:
            records.append((lineno, rec))
        else:
            quarantine.append(q)
    return records, quarantine, n


class _BackgroundHash:
    """sha256 of a file, computed in a background thread (hashlib releases the GIL on large blocks)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest: str | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.digest = sha256_file(self.path)
        except BaseException as e:  # reported by join()
            self.error = e

    def join(self) -> str:
        self._thread.join()
        if self.error is not None or self.digest is None:
            raise InputError(f"cannot read file: {self.error}", path=str(self.path))
        return self.digest


def fetch_lines(lines: Iterable[bytes], wanted: set[int]) -> dict[int, tuple[int, bytes]]:
    """Record number (non-blank lines, as polars counts them) -> (1-based line number, the line)."""
    out: dict[int, tuple[int, bytes]] = {}
    k = 0
    for lineno, line in enumerate(lines, 1):
        if line.strip():
            k += 1
            if k in wanted:
                out[k] = (lineno, line)
                if len(out) == len(wanted):
                    break
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- file readers -----------------------------------------------------------------------------
def _read_file(path: Path, gz: bool) -> tuple[str, bytes]:
    """(sha256 of the file as stored, its content decompressed when gzipped)."""
    data = path.read_bytes()
    sha = _sha256(data)
    if not gz:
        return sha, data
    try:
        return sha, gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InputError(f"not a readable gzip file ({e})", path=str(path)) from None


def _exact_jsonl(path: Path, gz: bool, sha: str | None, notes: list[str]) -> Raw:
    where = str(path)
    if gz:
        records, quarantine, n = jsonl_records(io.BytesIO(_read_file(path, gz)[1]), where)
    else:
        with open(path, "rb") as f:
            records, quarantine, n = jsonl_records(f, where)
    if n == 0:
        raise InputError("file has no records (only blank lines)", path=where)
    return Raw(where, "jsonl", n, records=records, quarantine=quarantine,
               sha256=sha or sha256_file(path), path=where, notes=notes, row_unit="line")


def read_jsonl(path: Path, gz: bool = False) -> Raw:
    """JSONL: the polars fast path when it is exact, the line-by-line path otherwise."""
    where = str(path)
    hasher: _BackgroundHash | None = None
    if gz:
        sha, data = _read_file(path, gz)
        source: Any = io.BytesIO(data)
    else:
        hasher, source = _BackgroundHash(path), path
    try:
        df = pl.read_ndjson(source, infer_schema_length=None)
    except Exception as e:  # polars could not read it: the exact path finds and quarantines what failed
        sha = hasher.join() if hasher else sha
        return _exact_jsonl(path, gz, sha, [f"exact line-by-line read ({type(e).__name__} from polars)"])
    sha = hasher.join() if hasher else sha
    if df.height == 0:
        raise InputError("file has no records (only blank lines)", path=where)

    def reread() -> Raw:
        return _exact_jsonl(path, gz, sha, ["exact line-by-line read (the fast read was in doubt)"])

    def lines(wanted: set[int]) -> dict[int, tuple[int, bytes]]:
        if gz:
            return fetch_lines(io.BytesIO(_read_file(path, gz)[1]), wanted)
        with open(path, "rb") as f:
            return fetch_lines(f, wanted)

    df = df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    return Raw(where, "jsonl", df.height, df=df, sha256=sha, path=where, coerced=True, reread=reread,
               row_unit="line", lines=lines)


def read_json(path: Path, gz: bool = False) -> Raw:
    where = str(path)
    sha, data = _read_file(path, gz)
    _check_not_utf16(data, where)
    text, lossy = _decode(data)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        if text.lstrip().startswith("{"):
            raw = read_jsonl(path, gz)
            raw.fmt = "jsonl"
            raw.notes.append("a .json file holding one object per line: read as JSONL")
            return raw
        raise InputError(f"not valid JSON: {e.msg} (character {e.colno})", path=where, line=e.lineno) from None
    except (RecursionError, ValueError) as e:
        raise InputError(f"unreadable JSON ({type(e).__name__})", path=where) from None
    notes: list[str] = []
    if isinstance(obj, dict):
        lists = [k for k, v in obj.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if len(lists) == 1 and len(obj) <= 3:
            notes.append(f"records taken from the object's {lists[0]!r} array")
            obj = obj[lists[0]]
        else:
            obj = [obj]
    if not isinstance(obj, list):
        raise InputError(f"expected a JSON array of objects, got a JSON {type(obj).__name__}", path=where)
    records, quarantine = [], []
    check = lossy or "\\ud" in text or "\\uD" in text
    for i, rec in enumerate(obj, 1):
        if not isinstance(rec, dict):
            quarantine.append(qrow(where, i, "not_an_object", f"a JSON {type(rec).__name__}, not an object", rec))
        elif check and has_lone_surrogate(rec):
            quarantine.append(qrow(where, i, "bad_encoding", "invalid UTF-8 or a lone surrogate escape", rec))
        else:
            records.append((i, rec))
    if not obj:
        raise InputError("the JSON array is empty", path=where)
    return Raw(where, "json", len(obj), records=records, quarantine=quarantine, sha256=sha, path=where,
               notes=notes)


def _csv_rows(text: str, sep: str) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, fields) for each record, via Python's csv module."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            break
        except OverflowError:
            limit //= 10
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        yield start, fields
        start = reader.line_num + 1


def read_csv(path: Path, gz: bool = False, sep: str = ",") -> Raw:
    where = str(path)
    sha, data = _read_file(path, gz)
    _check_not_utf16(data, where)
    text, lossy = _decode(data)
    rows = _csv_rows(text, sep)
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise InputError("file is empty", path=where) from None
    except csv.Error as e:
        raise InputError(f"unreadable CSV header: {e}", path=where, line=1) from None
    if lossy and has_lone_surrogate(header):
        raise InputError("the header is not valid UTF-8", path=where, line=header_line)
    for i, name in enumerate(header):
        if not name.strip():
            raise InputError(f"CSV header has an empty column name (field {i + 1})", path=where, line=header_line)
        if header.index(name) != i:
            raise InputError("CSV header repeats a column name", path=where, line=header_line, column=name)
    records, quarantine, n = [], [], 0
    try:
        for line, fields in rows:
            if not fields or (len(fields) == 1 and not fields[0].strip() and len(header) > 1):
                continue  # blank line
            n += 1
            if len(fields) != len(header):
                quarantine.append(qrow(where, line, "malformed_row",
                                       f"expected {len(header)} fields, got {len(fields)}", sep.join(fields)))
            elif lossy and has_lone_surrogate(fields):
                quarantine.append(qrow(where, line, "bad_encoding", "invalid UTF-8 bytes in the record",
                                       sep.join(fields).encode("utf-8", "surrogateescape")))
            else:
                records.append((line, dict(zip(header, fields, strict=True))))
    except csv.Error as e:
        raise InputError(f"unreadable CSV: {e}", path=where) from None
    if n == 0:
        raise InputError("file has a header but no records", path=where)
    return Raw(where, "csv", n, records=records, quarantine=quarantine, sha256=sha, path=where,
               row_unit="line")


def read_parquet(path: Path, gz: bool = False) -> Raw:
    where = str(path)
    try:
        df = pl.read_parquet(path)
    except Exception as e:
        raise InputError(f"not a readable Parquet file ({type(e).__name__})", path=where) from None
    if df.height == 0:
        raise InputError("file has no rows", path=where)
    return Raw(where, "parquet", df.height, df=_with_rows(df), sha256=sha256_file(path), path=where)


def _with_rows(df: pl.DataFrame) -> pl.DataFrame:
    if ROW in df.columns:
        df = df.drop(ROW)
    return df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))


READERS: dict[str, Callable[..., Raw]] = {
    "jsonl": read_jsonl, "json": read_json, "csv": read_csv,
    "tsv": lambda p, gz=False: read_csv(p, gz, sep="\t"), "parquet": read_parquet,
}
_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
           ".parquet": "parquet", ".pq": "parquet"}


def sniff(path: Path) -> tuple[str, bool]:
    """(file format, gzipped) from the name, or from the first bytes when the name says nothing."""
    with open(path, "rb") as f:
        head = f.read(4096)
    gz = head.startswith(_GZIP_MAGIC)
    kind = _SUFFIX.get(suffixes(path))
    if kind:
        return kind, gz
    if head.startswith(b"PAR1"):
        return "parquet", False
    if gz:
        try:
            head = gzip.GzipFile(fileobj=io.BytesIO(head)).read(1024)
        except (OSError, EOFError):
            head = b""
    first = head.lstrip(BOM + b" \t\r\n")[:1]
    return ("json" if first == b"[" else "jsonl" if first == b"{" else "csv"), gz


def read_path(path: str | Path) -> Raw:
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", path=str(p))
    if p.is_dir():
        raise InputError("is a directory, not a data file", path=str(p))
    if p.stat().st_size == 0:
        raise InputError("file is empty", path=str(p))
    with open(p, "rb") as f:
        _check_not_utf16(f.read(66), str(p))
    kind, gz = sniff(p)
    raw = READERS[kind](p, gz)
    if not raw.columns and raw.quarantine:
        first = raw.quarantine[0]
        where = {"line": first["row"]} if raw.row_unit == "line" else {"row": first["row"]}
        raise InputError(f"no readable record ({len(raw.quarantine)} rows, all unusable; first: "
                         f"{first['reason']}: {first['detail']})", path=str(p), **where)
    return raw


# ---- in-memory sources ------------------------------------------------------------------------
def _records_raw(items: list[Any], fmt: str, where: str) -> Raw:
    records, quarantine = [], []
    for i, rec in enumerate(items, 1):
        if not isinstance(rec, dict):
            quarantine.append(qrow(where, i, "not_an_object", f"a {type(rec).__name__}, not a dict", rec))
        elif has_lone_surrogate(rec):
            quarantine.append(qrow(where, i, "bad_encoding", "a string with a lone surrogate", rec))
        else:
            records.append((i, {str(k): v for k, v in rec.items()}))
    return Raw(where, fmt, len(items), records=records, quarantine=quarantine)


def _frame_raw(df: pl.DataFrame, fmt: str, where: str) -> Raw:
    return Raw(where, fmt, df.height, df=_with_rows(df))


def read_object(obj: Any) -> Raw:
    """A polars/pandas frame, a Hugging Face ``datasets.Dataset``, or a list of dicts."""
    if isinstance(obj, pl.LazyFrame):
        obj = obj.collect()
    if isinstance(obj, pl.DataFrame):
        return _frame_raw(obj, "polars", "polars DataFrame")
    mod = type(obj).__module__
    if mod.startswith("pandas"):
        import pandas as pd

        if not isinstance(obj, pd.DataFrame):
            raise InputError(f"unsupported input: {type(obj).__name__}")
        frame = obj.reset_index(drop=True)
        try:
            return _frame_raw(pl.from_pandas(frame), "pandas", "pandas DataFrame")
        except Exception:  # mixed object columns: check record by record
            recs = [{str(k): _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]
            return _records_raw(recs, "pandas", "pandas DataFrame")
    if mod.startswith("datasets"):
        if hasattr(obj, "to_polars"):
            return _frame_raw(obj.to_polars(), "datasets", "datasets.Dataset")
        return _frame_raw(pl.from_arrow(obj.data.table), "datasets", "datasets.Dataset")  # type: ignore[arg-type]
    if isinstance(obj, (list, tuple)):
        return _records_raw(list(obj), "records", "list of records")
    raise InputError(f"unsupported input: {type(obj).__name__} (give a path, a polars/pandas frame, "
                     "a datasets.Dataset or a list of dicts)")


def _plain(v: Any) -> Any:
    """A pandas cell as a plain Python value (numpy scalars unwrapped, NaN -> None)."""
    if type(v).__module__ == "numpy" and hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and v != v else v


def read_source(source: Any) -> Raw:
    if isinstance(source, (str, Path)):
        return read_path(source)
    return read_object(source)
