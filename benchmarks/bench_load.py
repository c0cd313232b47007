"""Loading benchmark (issue 2): `prefaudit validate` on a 1,000,000-pair JSONL vs a bare polars.read_ndjson.

Generates (once) ``benchmarks/_work/pairs_<n>.jsonl``: prompts of 5-25 words, responses of 10-80 words,
no pair_id (so the loader computes content-hash ids, its slower path). Then, in the same run and
alternating, it runs as separate processes

- the anchor: ``python -c "polars.read_ndjson(path)"``;
- ``python -m prefaudit validate path`` (read, fast-path checks, sha256, content ids, PreferenceSet,
  summary);

and records whole-process wall time and peak RSS (``os.wait4``) for each; medians over ``--repeats``.
Targets: time ratio < 2x, peak memory < 3x the file size. It also times ``import prefaudit.cli`` and
lists any heavy library that ``validate`` imported (there should be none).

    python benchmarks/bench_load.py [--n 1000000] [--repeats 3] [--regen]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path(__file__).resolve().parent / "_work"
ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn", "scipy", "matplotlib")


def generate(path: Path, n: int, seed: int = 0) -> None:
    """n pairs of pseudo-words: prompts 5-25 words, chosen/rejected 10-80 words."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = np.array(["".join(rng.choice(letters, k)) for k in rng.integers(2, 11, 5000)], dtype=object)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for start in range(0, n, 10_000):
            m = min(10_000, n - start)
            lens = np.stack([rng.integers(5, 26, m), rng.integers(10, 81, m), rng.integers(10, 81, m)], axis=1)
            words = vocab[rng.integers(0, len(vocab), int(lens.sum()))]
            pos, out = 0, []
            for a, b, c in lens:
                p = " ".join(words[pos:pos + a])
                ch = " ".join(words[pos + a:pos + a + b])
                rj = " ".join(words[pos + a + b:pos + a + b + c])
                pos += a + b + c
                out.append(f'{{"prompt": "{p}", "chosen": "{ch}", "rejected": "{rj}"}}\n')
            f.write("".join(out))
    tmp.replace(path)


def measure(cmd: list[str]) -> tuple[float, int, str, float]:
    """(wall seconds, peak RSS bytes, stdout, CPU seconds user+sys) of one child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return wall, usage.ru_maxrss * 1024, out.decode(), usage.ru_utime + usage.ru_stime


BREAKDOWN = r"""
import json, resource, sys, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
import polars as pl
from pathlib import Path
from prefaudit.data import fields, ids
from prefaudit.data.io import sha256_file
path = Path(sys.argv[1])
rows = []
def step(name, fn):
    c, t = cpu(), time.perf_counter()
    out = fn()
    rows.append((name, cpu() - c, time.perf_counter() - t))
    return out
step("sha256 of the file", lambda: sha256_file(path))
step("read_ndjson, default inference", lambda: pl.read_ndjson(path))
df = step("read_ndjson, full inference", lambda: pl.read_ndjson(path, infer_schema_length=None))
df = df.with_row_index(fields.ROW, offset=1).with_columns(pl.col(fields.ROW).cast(pl.Int64))
step("doubt checks (3 text columns)", lambda: [fields.suspicious_rows(df, c) for c in ("prompt", "chosen", "rejected")])
pid = step("content ids (sha1, 2 threads)", lambda: ids.content_ids(df))
step("pair_id uniqueness check", lambda: pid.n_unique())
print(json.dumps(rows))
"""


def breakdown(path: Path) -> list[tuple[str, float, float]]:
    """CPU and wall seconds of the loader's main steps, each alone, in a fresh process."""
    return json.loads(measure([sys.executable, "-c", BREAKDOWN, str(path)])[2])


def import_check() -> tuple[float, float, list[str]]:
    code = ("import json, sys, time; t = time.perf_counter(); import prefaudit.cli; "
            f"print(json.dumps([time.perf_counter() - t, [m for m in {HEAVY!r} if m in sys.modules]]))")
    bare = min(measure([sys.executable, "-c", "pass"])[0] for _ in range(3))
    runs = [measure([sys.executable, "-c", code]) for _ in range(3)]
    best = min(runs, key=lambda r: r[0])
    inner, heavy = json.loads(best[2])
    return bare, inner, heavy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--regen", action="store_true")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / f"pairs_{args.n}.jsonl"
    if args.regen or not path.exists():
        t = time.perf_counter()
        generate(path, args.n)
        print(f"generated {path} in {time.perf_counter() - t:.1f}s")
    size = path.stat().st_size
    anchor_cmd = [sys.executable, "-c", "import sys, polars as pl; print(pl.read_ndjson(sys.argv[1]).height)", str(path)]
    validate_cmd = [sys.executable, "-m", "prefaudit", "validate", str(path)]
    anchor, ours = [], []
    for _ in range(args.repeats):
        anchor.append(measure(anchor_cmd))
        ours.append(measure(validate_cmd))
    assert anchor[0][2].strip() == str(args.n), anchor[0][2]
    assert f"pairs         {args.n:,}" in ours[0][2], ours[0][2]
    a_t, a_m = statistics.median(r[0] for r in anchor), statistics.median(r[1] for r in anchor)
    o_t, o_m = statistics.median(r[0] for r in ours), statistics.median(r[1] for r in ours)
    a_c, o_c = statistics.median(r[3] for r in anchor), statistics.median(r[3] for r in ours)
    bare, imp, heavy = import_check()
    gib = 1024 ** 3
    print(f"\nfile: {path.name}, {args.n:,} pairs, {size / gib:.2f} GiB; {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}; medians of {args.repeats}")
    print(f"{'run':<32}{'wall s':>9}{'CPU s':>9}{'peak RSS GiB':>14}{'RSS / file':>12}")
    print(f"{'polars.read_ndjson (anchor)':<32}{a_t:>9.2f}{a_c:>9.2f}{a_m / gib:>14.2f}{a_m / size:>12.2f}")
    print(f"{'prefaudit validate':<32}{o_t:>9.2f}{o_c:>9.2f}{o_m / gib:>14.2f}{o_m / size:>12.2f}")
    print(f"time ratio {o_t / a_t:.2f}x (target < 2x; CPU-time ratio {o_c / a_c:.2f}x); "
          f"peak memory {o_m / size:.2f}x file (target < 3x)")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (1 min)")
    print(f"import prefaudit.cli: {imp:.3f}s (interpreter start {bare:.3f}s); heavy modules imported: {heavy or 'none'}")
    print(f"\n{'step (alone, in one process)':<34}{'CPU s':>8}{'wall s':>8}")
    for name, c, w in breakdown(path):
        print(f"{name:<34}{c:>8.2f}{w:>8.2f}")
    print("all runs (wall s, RSS GiB): anchor", [(round(r[0], 2), round(r[1] / gib, 2)) for r in anchor],
          "validate", [(round(r[0], 2), round(r[1] / gib, 2)) for r in ours])


if __name__ == "__main__":
    main()
