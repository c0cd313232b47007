"""On-disk embedding cache: one SQLite file per (model, backend), rows keyed by a text hash.

SQLite in WAL mode with a busy timeout lets several processes (e.g. pytest-xdist workers, or two
audits at once) read and write the same cache safely; ``INSERT OR REPLACE`` makes concurrent writes
of the same text harmless (the same vector is written twice). Vectors are stored as raw float32
bytes, so a cached vector is returned bit for bit as it was computed. Text is hashed (BLAKE2b, 128 bits), never stored.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_CHUNK = 900  # SQLite's default limit on bound variables per statement is 999 (older builds)


def text_hash(text: str) -> bytes:
    """16-byte BLAKE2b digest of a text (lone surrogates allowed)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(frozen=True)
class CacheStats:
    """Counters of an :class:`~prefaudit.embed.Embedder`, cumulative over its lifetime.

    ``requested``: texts passed to ``encode``; ``unique``: distinct texts among them (per call);
    ``hits``: distinct texts served from the on-disk cache; ``misses``: distinct texts not found
    there, i.e. run through the model (``misses == encoded``).
    """

    requested: int = 0
    unique: int = 0
    hits: int = 0
    misses: int = 0

    @property
    def encoded(self) -> int:
        return self.misses


class EmbeddingCache:
    """A SQLite file mapping text hash -> float32 vector for one (model, backend)."""

    def __init__(self, path: str | Path, *, timeout_s: float = 120.0) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS vectors (h BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
            )
            con.execute("CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL)")

    def _connect(self) -> _Closing:
        con = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        con.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        return _Closing(con)

    def get_many(self, hashes: Sequence[bytes], dim: int | None = None) -> dict[bytes, np.ndarray]:
        """Cached vectors for the given hashes (absent ones are left out)."""
        found: dict[bytes, np.ndarray] = {}
        with self._connect() as con:
            for start in range(0, len(hashes), _CHUNK):
                chunk = hashes[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for h, v in con.execute(f"SELECT h, v FROM vectors WHERE h IN ({marks})", chunk):
                    vec = np.frombuffer(v, dtype=np.float32)
                    if dim is None or vec.shape[0] == dim:
                        found[h] = vec
        return found

    def put_many(self, hashes: Sequence[bytes], vectors: np.ndarray) -> None:
        """Store vectors (rows of a float32 array) under their hashes (replacing any old row)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = ((h, vectors[i].tobytes()) for i, h in enumerate(hashes))
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.executemany("INSERT OR REPLACE INTO vectors (h, v) VALUES (?, ?)", rows)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def get_meta(self, key: str) -> str | None:
        with self._connect() as con:
            row = con.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, items: Iterable[tuple[str, str]]) -> None:
        with self._connect() as con:
            con.executemany("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", list(items))

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])


class _Closing:
    """Context manager around a connection that closes it on exit (sqlite3's own only commits)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con

    def __getattr__(self, name: str):
        return getattr(self._con, name)

    def __enter__(self) -> sqlite3.Connection:
        return self._con

    def __exit__(self, *exc: object) -> None:
        self._con.close()
